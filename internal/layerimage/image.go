// Package layerimage builds the layer as an OCI image, without Docker, so
// that container-image functions can take it with
//
//	COPY --from=<image> /opt /opt
//
// as the layer zips give it to zip functions. The image has one layer that
// holds the layer tree under /opt (the extension, the exec wrapper and the
// helpers) and nothing else: no base, no shell, no entrypoint. One image per
// architecture, in one OCI image index.
//
// It uses github.com/google/go-containerregistry to assemble and write the
// image; the layer's tar is written here so that it is reproducible (sorted
// entries, root-owned, one fixed time).
package layerimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Prefix is where the layer tree lies in the image: Lambda unpacks layers
// under /opt, so a Dockerfile copies /opt.
const Prefix = "opt"

// RefName is the tag the OCI layout gives the index
// (org.opencontainers.image.ref.name), e.g. for oci-layout://DIR:latest.
const RefName = "latest"

// Tree is one architecture's layer tree (as make layer stages it).
type Tree struct {
	Arch string // GOARCH: amd64 or arm64
	Dir  string // holds extensions/, credential-refresh/, python/, nodejs/
}

// Options are the image's metadata.
type Options struct {
	// Created is the image's creation time and every file's modification
	// time. A fixed time (e.g. the commit's) makes the build reproducible.
	Created time.Time
	Version string // org.opencontainers.image.version
}

// LayerTar writes dir as an uncompressed tar with every entry under
// Prefix: directories first on their way, entries sorted, uid and gid 0,
// modes as on disk (the extension and the wrapper must stay executable),
// modification times set to mtime. Only directories and regular files are
// allowed.
func LayerTar(dir string, mtime time.Time) ([]byte, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return fmt.Errorf("%s: only directories and regular files belong in the layer", p)
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		rel, _ := filepath.Rel(dir, p)
		name := Prefix
		if rel != "." {
			name = path.Join(Prefix, filepath.ToSlash(rel))
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		h := &tar.Header{Name: name, Mode: int64(fi.Mode().Perm()), ModTime: mtime.UTC(), Format: tar.FormatPAX, Uname: "root", Gname: "root"}
		if fi.IsDir() {
			h.Typeflag, h.Name = tar.TypeDir, name+"/"
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
			continue
		}
		h.Typeflag, h.Size = tar.TypeReg, fi.Size()
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(tw, f)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Image builds one architecture's image: an OCI manifest, an OCI config for
// linux/<arch>, and one gzip layer holding the tree under /opt.
func Image(t Tree, o Options) (v1.Image, error) {
	raw, err := LayerTar(t.Dir, o.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestCompression), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: o.Created},
			CreatedBy: "make image: the credential-refresh layer tree under /opt",
			Comment:   "extensions/credential-refresh, credential-refresh/exec-wrapper, python/, nodejs/",
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = "linux", t.Arch, variant(t.Arch)
	cf.Created = v1.Time{Time: o.Created}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":       "credential-refresh",
		"org.opencontainers.image.description": "The credential-refresh Lambda extension's layer tree under /opt, for COPY --from=<image> /opt /opt",
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
	return mutate.ConfigFile(img, cf)
}

func variant(arch string) string {
	if arch == "arm64" {
		return "v8"
	}
	return ""
}

// Index builds the OCI image index of one image per tree.
func Index(trees []Tree, o Options) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, t := range trees {
		img, err := Image(t, o)
		if err != nil {
			return nil, fmt.Errorf("%s image: %w", t.Arch, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{
				MediaType: types.OCIManifestSchema1,
				Platform:  &v1.Platform{OS: "linux", Architecture: t.Arch, Variant: variant(t.Arch)},
			},
		})
	}
	return idx, nil
}

// WriteLayout writes idx as an OCI image layout directory at dir (replacing
// it): index.json points at idx, tagged RefName.
func WriteLayout(dir string, idx v1.ImageIndex) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": RefName}))
}

// WriteArchive writes the layout directory dir as an OCI archive (a tar of
// the layout, as `docker load`, `skopeo copy oci-archive:` and crane read).
func WriteArchive(dir, out string) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	slices.Sort(files)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Close()
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0).UTC()}
		if err := tw.WriteHeader(h); err != nil {
			f.Close()
			return err
		}
		if _, err := tw.Write(b); err != nil {
			f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Extract writes the files of img's layers under dir, as a container
// runtime would unpack them (only directories and regular files; no path
// may leave dir).
func Extract(img v1.Image, dir string) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return err
		}
		err = extractTar(rc, dir)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func extractTar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean(h.Name)
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("layer entry %q leaves the root", h.Name)
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, os.FileMode(h.Mode).Perm()); err != nil {
				return err
			}
			if err := os.Chmod(dst, os.FileMode(h.Mode).Perm()); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode).Perm())
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := os.Chmod(dst, os.FileMode(h.Mode).Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("layer entry %q: type %c is not a directory or a regular file", h.Name, h.Typeflag)
		}
	}
}

// ForArch returns the image for linux/arch from the OCI layout at dir.
func ForArch(dir, arch string) (v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	root, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	rm, err := root.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(rm.Manifests) != 1 {
		return nil, fmt.Errorf("%s/index.json: %d entries, want 1 (the image index)", dir, len(rm.Manifests))
	}
	idx, err := root.ImageIndex(rm.Manifests[0].Digest)
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == arch {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("%s: no linux/%s image in the index", dir, arch)
}

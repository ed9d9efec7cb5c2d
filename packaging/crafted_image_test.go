package packaging

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"os"
	pathpkg "path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/internal/layerimage"
)

// The image checks on crafted OCI layouts: the real producer's
// (internal/layerimage) must pass; layouts written here with
// go-containerregistry from crafted layer tars, or tampered with after,
// must fail.

var craftTime = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// craftedImage is one platform of a crafted layout.
type craftedImage struct {
	arch   string // GOARCH
	tar    []byte // the uncompressed layer
	docker bool   // Docker media types instead of OCI
}

// writeLayout writes imgs as an OCI layout (index.json -> image index ->
// one manifest per image), as internal/layerimage does, but from the given
// layer tars and media types.
func writeLayout(t *testing.T, imgs []craftedImage) string {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, c := range imgs {
		manifestType, configType, layerType := types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer
		if c.docker {
			idx = mutate.IndexMediaType(idx, types.DockerManifestList)
			manifestType, configType, layerType = types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer
		}
		raw := c.tar
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
			tarball.WithMediaType(layerType))
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.Append(mutate.ConfigMediaType(mutate.MediaType(empty.Image, manifestType), configType),
			mutate.Addendum{Layer: layer, MediaType: layerType})
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", c.arch
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			MediaType: manifestType, Platform: &v1.Platform{OS: "linux", Architecture: c.arch},
		}})
	}
	dir := filepath.Join(t.TempDir(), "image")
	if err := layerimage.WriteLayout(dir, idx); err != nil {
		t.Fatal(err)
	}
	return dir
}

// layerTar writes es as a layer tar the way internal/layerimage does:
// /opt, the directories on the way (0755), then the files, all root-owned.
// edit, if not nil, may change each header; extra entries come last.
func layerTar(t *testing.T, es []entry, edit func(h *tar.Header), extra ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	write := func(h *tar.Header, data []byte) {
		if edit != nil {
			edit(h)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	dirs := map[string]bool{}
	for _, e := range es {
		for d := pathpkg.Dir(e.name); d != "."; d = pathpkg.Dir(d) {
			dirs[d] = true
		}
	}
	write(&tar.Header{Name: "opt/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: craftTime}, nil)
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		write(&tar.Header{Name: "opt/" + d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: craftTime}, nil)
	}
	for _, e := range es {
		write(&tar.Header{Name: "opt/" + e.name, Typeflag: tar.TypeReg, Mode: int64(e.mode.Perm()), Size: int64(len(e.data)), ModTime: craftTime}, e.data)
	}
	for _, h := range extra {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(make([]byte, h.Size)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkWholeImage runs the image checks as TestImage does, for both
// architectures, into one list.
func checkWholeImage(dir string, zips map[string]string, maxBytes int64) problems {
	var p problems
	idx := p.checkImageIndex(dir)
	if idx == nil {
		return p
	}
	for _, arch := range []string{"x86_64", "arm64"} {
		p.checkImage(dir, idx, arch, zips[arch], maxBytes)
	}
	return p
}

// blobOf returns the path of the blob of arch's manifest (what "manifest")
// or of its config or its first layer in the layout dir.
func blobOf(t *testing.T, dir, arch, what string) string {
	t.Helper()
	var p problems
	idx := p.checkImageIndex(dir)
	for _, m := range idx.Manifests {
		if m.Platform == nil || m.Platform.Architecture != arch {
			continue
		}
		d := m
		if what != "manifest" {
			b, err := readBlob(dir, m)
			if err != nil {
				t.Fatal(err)
			}
			var man ociManifestJSON
			if err := json.Unmarshal(b, &man); err != nil {
				t.Fatal(err)
			}
			d = man.Config
			if what == "layer" {
				d = man.Layers[0]
			}
		}
		return filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d.Digest, "sha256:"))
	}
	t.Fatalf("no %s image", arch)
	return ""
}

func TestImageChecks(t *testing.T) {
	// One good layer per architecture; its zip is the reference.
	layers := map[string][]entry{"x86_64": goodLayer(t, "x86_64"), "arm64": goodLayer(t, "arm64")}
	zips := map[string]string{}
	for arch, es := range layers {
		zips[arch] = writeZip(t, es)
	}
	// good returns the layers' entries for a crafted image, copied so that
	// a case can change them.
	good := func(arch string) []entry { return slices.Clone(layers[arch]) }
	goodImages := func() []craftedImage {
		return []craftedImage{{arch: "amd64", tar: layerTar(t, good("x86_64"), nil)}, {arch: "arm64", tar: layerTar(t, good("arm64"), nil)}}
	}
	pyHelper := "python/credential_refresh/__init__.py"
	tests := []struct {
		name     string
		layout   func(t *testing.T) string
		maxBytes int64
		want     []string
	}{
		{
			name: "the layout internal/layerimage writes from the zips' trees",
			layout: func(t *testing.T) string {
				var trees []layerimage.Tree
				for _, arch := range []string{"x86_64", "arm64"} {
					dir := t.TempDir()
					writeTree(t, dir, layers[arch])
					trees = append(trees, layerimage.Tree{Arch: goarchOf[arch], Dir: dir})
				}
				idx, err := layerimage.Index(trees, layerimage.Options{Created: craftTime, Version: "test"})
				if err != nil {
					t.Fatal(err)
				}
				dir := filepath.Join(t.TempDir(), "image")
				if err := layerimage.WriteLayout(dir, idx); err != nil {
					t.Fatal(err)
				}
				return dir
			},
		},
		{name: "a crafted good layout", layout: func(t *testing.T) string { return writeLayout(t, goodImages()) }},
		{
			name:   "no arm64 image",
			layout: func(t *testing.T) string { return writeLayout(t, goodImages()[:1]) },
			want:   []string{`platforms ["linux/amd64"]`, "image linux/arm64: no manifest"},
		},
		{
			name: "two amd64 images",
			layout: func(t *testing.T) string {
				imgs := goodImages()
				return writeLayout(t, append(imgs, imgs[0]))
			},
			want: []string{`platforms ["linux/amd64" "linux/amd64" "linux/arm64"]`, "image linux/amd64: more than one manifest"},
		},
		{
			name: "the arm64 binaries in the amd64 image",
			layout: func(t *testing.T) string {
				imgs := goodImages()
				imgs[0].tar = imgs[1].tar
				return writeLayout(t, imgs)
			},
			want: []string{"image linux/amd64: /opt/extensions/credential-refresh differs from layer.zip's"},
		},
		{
			name: "a helper that differs from the zip's",
			layout: func(t *testing.T) string {
				imgs := goodImages()
				es := withEntry(t, good("arm64"), pyHelper, func(e *entry) { e.data = []byte("# other\n") })
				imgs[1].tar = layerTar(t, es, nil)
				return writeLayout(t, imgs)
			},
			want: []string{"image linux/arm64: /opt/" + pyHelper + " differs"},
		},
		{
			name: "the wrapper with another mode than in the zip",
			layout: func(t *testing.T) string {
				imgs := goodImages()
				imgs[0].tar = layerTar(t, withEntry(t, good("x86_64"), wrapperPath, func(e *entry) { e.mode = 0o700 }), nil)
				return writeLayout(t, imgs)
			},
			want: []string{"/opt/" + wrapperPath + " has mode 700, layer.zip's " + wrapperPath + " has 755"},
		},
		{
			name: "a helper missing from the image",
			layout: func(t *testing.T) string {
				imgs := goodImages()
				imgs[1].tar = layerTar(t, without(good("arm64"), pyHelper), nil)
				return writeLayout(t, imgs)
			},
			want: []string{"image linux/arm64: holds"},
		},
		{
			name: "a file owned by uid 1000",
			layout: func(t *testing.T) string {
				imgs := goodImages()
				imgs[0].tar = layerTar(t, good("x86_64"), func(h *tar.Header) {
					if h.Name == "opt/"+wrapperPath {
						h.Uid = 1000
					}
				})
				return writeLayout(t, imgs)
			},
			// Not counted among the image's files either.
			want: []string{`entry "opt/credential-refresh/exec-wrapper" (type '0', uid 1000, gid 0), want a root-owned`, "image linux/amd64: holds"},
		},
		{
			name: "a file outside /opt",
			layout: func(t *testing.T) string {
				imgs := goodImages()
				imgs[0].tar = layerTar(t, good("x86_64"), nil, &tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
				return writeLayout(t, imgs)
			},
			want: []string{`entry "etc/passwd"`},
		},
		{
			name: "a path that climbs out of /opt",
			layout: func(t *testing.T) string {
				imgs := goodImages()
				imgs[1].tar = layerTar(t, good("arm64"), nil, &tar.Header{Name: "opt/../etc/cron.d/x", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
				return writeLayout(t, imgs)
			},
			want: []string{`entry "opt/../etc/cron.d/x"`},
		},
		{
			name: "a symlink under /opt",
			layout: func(t *testing.T) string {
				imgs := goodImages()
				imgs[1].tar = layerTar(t, good("arm64"), nil, &tar.Header{Name: "opt/extensions/other", Typeflag: tar.TypeSymlink, Linkname: "/bin/sh", Mode: 0o777})
				return writeLayout(t, imgs)
			},
			want: []string{`entry "opt/extensions/other" (type '2'`},
		},
		{
			name: "an extra directory under /opt",
			layout: func(t *testing.T) string {
				imgs := goodImages()
				imgs[1].tar = layerTar(t, good("arm64"), nil, &tar.Header{Name: "opt/lib/", Typeflag: tar.TypeDir, Mode: 0o755})
				return writeLayout(t, imgs)
			},
			want: []string{"unexpected directory /opt/lib/"},
		},
		{
			name: "Docker media types",
			layout: func(t *testing.T) string {
				imgs := goodImages()
				imgs[0].docker, imgs[1].docker = true, true
				return writeLayout(t, imgs)
			},
			want: []string{
				"index.json names a \"application/vnd.docker.distribution.manifest.list.v2+json\"",
				"the image index has schemaVersion 2, mediaType \"application/vnd.docker.distribution.manifest.list.v2+json\"",
				"index entry for linux/amd64 is a \"application/vnd.docker.distribution.manifest.v2+json\"",
				"index entry for linux/arm64 is a \"application/vnd.docker.distribution.manifest.v2+json\"",
				"image linux/amd64: manifest has schemaVersion 2, mediaType \"application/vnd.docker.distribution.manifest.v2+json\"",
				"image linux/amd64: config is a \"application/vnd.docker.container.image.v1+json\"",
				"image linux/amd64: layer 0", "is a \"application/vnd.docker.image.rootfs.diff.tar.gzip\"",
				"image linux/arm64: manifest has", "image linux/arm64: config is a", "image linux/arm64: layer 0",
			},
		},
		{
			name: "a layer blob that does not match its digest",
			layout: func(t *testing.T) string {
				dir := writeLayout(t, goodImages())
				appendByte(t, blobOf(t, dir, "arm64", "layer"))
				return dir
			},
			want: []string{"image linux/arm64: layer 0", "digest does not verify"},
		},
		{
			name: "a manifest blob that does not match its digest",
			layout: func(t *testing.T) string {
				dir := writeLayout(t, goodImages())
				appendByte(t, blobOf(t, dir, "amd64", "manifest"))
				return dir
			},
			want: []string{"image linux/amd64: manifest: blob", "digest does not verify"},
		},
		{
			name: "a config blob missing",
			layout: func(t *testing.T) string {
				dir := writeLayout(t, goodImages())
				remove(t, blobOf(t, dir, "amd64", "config"))
				return dir
			},
			want: []string{"image linux/amd64: config: open"},
		},
		{
			name:     "over the size bound",
			layout:   func(t *testing.T) string { return writeLayout(t, goodImages()) },
			maxBytes: 2000,
			want:     []string{"image linux/amd64:", "want at most 2000", "image linux/arm64:", "want at most 2000"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			max := tt.maxBytes
			if max == 0 {
				max = maxZipBytes
			}
			got := checkWholeImage(tt.layout(t), zips, max)
			wantEach(t, got, tt.want...)
		})
	}
}

// wantEach fails t unless each wanted substring is in got, in order, and
// every problem in got holds at least one of them (none for a good
// artifact). A problem may hold more than one.
func wantEach(t *testing.T, got problems, want ...string) {
	t.Helper()
	i := 0
	for _, g := range got {
		matched := false
		for i < len(want) && strings.Contains(g, want[i]) {
			i, matched = i+1, true
		}
		if !matched {
			t.Errorf("unexpected problem %q", g)
		}
	}
	if i < len(want) {
		t.Errorf("problems = %q, want them to contain, in order, %q", got, want)
	}
}

func appendByte(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

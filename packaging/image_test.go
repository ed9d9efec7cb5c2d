package packaging

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// The OCI media types the image must use (not Docker's).
const (
	ociIndex    = "application/vnd.oci.image.index.v1+json"
	ociManifest = "application/vnd.oci.image.manifest.v1+json"
	ociConfig   = "application/vnd.oci.image.config.v1+json"
	ociLayerGz  = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// goarchOf maps a Lambda architecture to the image platform's.
var goarchOf = map[string]string{"x86_64": "amd64", "arm64": "arm64"}

// imagePrefix is where the layer tree lies in the image (internal/layerimage.Prefix).
const imagePrefix = "opt"

type ociPlatform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

type ociDescriptor struct {
	MediaType string       `json:"mediaType"`
	Digest    string       `json:"digest"`
	Size      int64        `json:"size"`
	Platform  *ociPlatform `json:"platform,omitempty"`
}

type ociIndexJSON struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Manifests     []ociDescriptor `json:"manifests"`
}

type ociManifestJSON struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        ociDescriptor   `json:"config"`
	Layers        []ociDescriptor `json:"layers"`
}

type ociConfigJSON struct {
	ociPlatform
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

var sha256Digest = regexp.MustCompile(`^sha256:([0-9a-f]{64})$`)

// readBlob reads the blob d names from the OCI layout dir and verifies it:
// a sha256 digest of exactly the blob's bytes, and the descriptor's size.
func readBlob(dir string, d ociDescriptor) ([]byte, error) {
	m := sha256Digest.FindStringSubmatch(d.Digest)
	if m == nil {
		return nil, fmt.Errorf("digest %q, want sha256:<64 hex digits>", d.Digest)
	}
	b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", m[1]))
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != m[1] {
		return nil, fmt.Errorf("blob %s: its sha256 is %x: digest does not verify", short(d.Digest), sum)
	}
	if int64(len(b)) != d.Size {
		return nil, fmt.Errorf("blob %s: %d bytes, its descriptor says %d", short(d.Digest), len(b), d.Size)
	}
	return b, nil
}

func short(digest string) string {
	if len(digest) > 19 {
		return digest[:19]
	}
	return digest
}

// checkImageIndex checks the OCI layout dir down to its image index: the
// oci-layout marker, index.json naming exactly one OCI image index whose
// digest verifies, and in it exactly one OCI manifest per platform,
// linux/amd64 and linux/arm64. It returns the index, or nil if there is
// none to read.
func (p *problems) checkImageIndex(dir string) *ociIndexJSON {
	var marker struct {
		Version string `json:"imageLayoutVersion"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "oci-layout")); err != nil {
		p.addf("image: %v", err)
	} else if err := json.Unmarshal(b, &marker); err != nil || marker.Version != "1.0.0" {
		p.addf("image: oci-layout %q, want imageLayoutVersion 1.0.0", b)
	}
	var top ociIndexJSON
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err == nil {
		err = json.Unmarshal(b, &top)
	}
	if err != nil {
		p.addf("image: index.json: %v", err)
		return nil
	}
	if len(top.Manifests) != 1 {
		p.addf("image: index.json has %d entries, want 1 (the image index)", len(top.Manifests))
		return nil
	}
	d := top.Manifests[0]
	if d.MediaType != ociIndex {
		p.addf("image: index.json names a %q, want an OCI image index (%s)", d.MediaType, ociIndex)
	}
	b, err = readBlob(dir, d)
	if err != nil {
		p.addf("image: the image index: %v", err)
		return nil
	}
	var idx ociIndexJSON
	if err := json.Unmarshal(b, &idx); err != nil {
		p.addf("image: the image index: %v", err)
		return nil
	}
	if idx.SchemaVersion != 2 || idx.MediaType != ociIndex {
		p.addf("image: the image index has schemaVersion %d, mediaType %q, want 2, %s", idx.SchemaVersion, idx.MediaType, ociIndex)
	}
	var platforms []string
	for _, m := range idx.Manifests {
		if m.Platform == nil {
			p.addf("image: index entry %s has no platform", short(m.Digest))
			continue
		}
		platforms = append(platforms, m.Platform.OS+"/"+m.Platform.Architecture)
		if m.MediaType != ociManifest {
			p.addf("image: index entry for %s/%s is a %q, want an OCI manifest (%s)", m.Platform.OS, m.Platform.Architecture, m.MediaType, ociManifest)
		}
	}
	sort.Strings(platforms)
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(platforms, want) {
		p.addf("image: the index holds platforms %q, want exactly %q", platforms, want)
	}
	return &idx
}

// imageFile is one file of an image's layers.
type imageFile struct {
	mode fs.FileMode
	data []byte
}

// checkImage checks arch's image in the index that checkImageIndex read
// from the OCI layout dir: an OCI manifest and a config for linux/<goarch>,
// digests verified; OCI tar+gzip layers whose uncompressed digests are the
// config's diff IDs, every entry a root-owned file or directory under /opt;
// together exactly the files of zipPath under /opt, byte for byte with the
// same modes (the same binaries as the zip, from the same tree); and
// manifest, config and layers within maxBytes.
func (p *problems) checkImage(dir string, idx *ociIndexJSON, arch, zipPath string, maxBytes int64) {
	goarch := goarchOf[arch]
	label := "image linux/" + goarch
	var desc *ociDescriptor
	for i, m := range idx.Manifests {
		if m.Platform != nil && m.Platform.OS == "linux" && m.Platform.Architecture == goarch {
			if desc != nil {
				p.addf("%s: more than one manifest in the index", label)
			}
			desc = &idx.Manifests[i]
		}
	}
	if desc == nil {
		p.addf("%s: no manifest in the index", label)
		return
	}
	mb, err := readBlob(dir, *desc)
	if err != nil {
		p.addf("%s: manifest: %v", label, err)
		return
	}
	var man ociManifestJSON
	if err := json.Unmarshal(mb, &man); err != nil {
		p.addf("%s: manifest: %v", label, err)
		return
	}
	if man.SchemaVersion != 2 || man.MediaType != ociManifest {
		p.addf("%s: manifest has schemaVersion %d, mediaType %q, want 2, %s", label, man.SchemaVersion, man.MediaType, ociManifest)
	}
	if man.Config.MediaType != ociConfig {
		p.addf("%s: config is a %q, want %s", label, man.Config.MediaType, ociConfig)
	}
	cb, err := readBlob(dir, man.Config)
	if err != nil {
		p.addf("%s: config: %v", label, err)
		return
	}
	var cfg ociConfigJSON
	if err := json.Unmarshal(cb, &cfg); err != nil {
		p.addf("%s: config: %v", label, err)
		return
	}
	if cfg.OS != "linux" || cfg.Architecture != goarch || cfg.Variant != desc.Platform.Variant {
		p.addf("%s: config is for %s/%s/%s, the index says %s/%s/%s", label, cfg.OS, cfg.Architecture, cfg.Variant,
			desc.Platform.OS, desc.Platform.Architecture, desc.Platform.Variant)
	}
	if len(cfg.RootFS.DiffIDs) != len(man.Layers) {
		p.addf("%s: config has %d diff IDs for %d layers", label, len(cfg.RootFS.DiffIDs), len(man.Layers))
	}
	if len(man.Layers) == 0 {
		p.addf("%s: no layers", label)
	}
	size := int64(len(mb) + len(cb))
	files := map[string]imageFile{}
	unread := 0 // layers not read: the files are then not compared
	for i, l := range man.Layers {
		name := fmt.Sprintf("%s: layer %d (%s)", label, i, short(l.Digest))
		size += l.Size
		if l.MediaType != ociLayerGz {
			p.addf("%s is a %q, want %s", name, l.MediaType, ociLayerGz)
		}
		lb, err := readBlob(dir, l)
		if err != nil {
			p.addf("%s: %v", name, err)
			unread++
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(lb))
		if err != nil {
			p.addf("%s: not gzip: %v", name, err)
			unread++
			continue
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			p.addf("%s: gzip: %v", name, err)
			unread++
			continue
		}
		if sum := sha256.Sum256(raw); i < len(cfg.RootFS.DiffIDs) && cfg.RootFS.DiffIDs[i] != "sha256:"+hex.EncodeToString(sum[:]) {
			p.addf("%s: uncompressed digest sha256:%x is not the config's diff ID %s", name, sum, cfg.RootFS.DiffIDs[i])
		}
		p.checkLayerTarEntries(name, raw, files)
	}
	if unread == 0 {
		p.compareWithZip(label, files, zipPath)
	}
	if size > maxBytes {
		p.addf("%s: %d bytes (%.2f MB: manifest, config, gzip layers), want at most %d (%g MB)", label, size, float64(size)/1e6, maxBytes, float64(maxBytes)/1e6)
	}
}

// checkLayerTarEntries reads one uncompressed layer: every entry must be a
// root-owned directory or regular file at or under /opt, named without
// ".." or a leading "/". Its files go into files by path under /opt.
func (p *problems) checkLayerTarEntries(name string, raw []byte, files map[string]imageFile) {
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			p.addf("%s: tar: %v", name, err)
			return
		}
		clean := path.Clean(h.Name)
		under := clean == imagePrefix || strings.HasPrefix(clean, imagePrefix+"/")
		owned := h.Uid == 0 && h.Gid == 0
		kind := h.Typeflag == tar.TypeDir || h.Typeflag == tar.TypeReg
		if !under || !owned || !kind || strings.HasPrefix(h.Name, "/") || strings.Contains("/"+h.Name+"/", "/../") {
			p.addf("%s: entry %q (type %q, uid %d, gid %d), want a root-owned file or directory under /%s", name, h.Name, h.Typeflag, h.Uid, h.Gid, imagePrefix)
			continue
		}
		mode := fs.FileMode(h.Mode).Perm()
		rel := strings.TrimPrefix(clean, imagePrefix+"/")
		if h.Typeflag == tar.TypeDir {
			p.checkDirMode(name+": /"+clean, mode)
			if clean != imagePrefix && !layerDirs()[rel] {
				p.addf("%s: unexpected directory /%s/", name, clean)
			}
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			p.addf("%s: /%s: %v", name, clean, err)
			continue
		}
		if _, dup := files[rel]; dup {
			p.addf("%s: /%s appears more than once", name, clean)
		}
		files[rel] = imageFile{mode: mode, data: data}
	}
}

// compareWithZip: the image's files are exactly the zip's, under /opt,
// byte for byte and mode for mode.
func (p *problems) compareWithZip(label string, files map[string]imageFile, zipPath string) {
	zname := filepath.Base(zipPath)
	z, err := zip.OpenReader(zipPath)
	if err != nil {
		p.addf("%s: %s: %v", label, zname, err)
		return
	}
	defer z.Close()
	zfiles := map[string]imageFile{}
	for _, f := range z.File {
		if f.FileInfo().IsDir() {
			continue
		}
		data, err := readZipEntry(f)
		if err != nil {
			p.addf("%s: %s:%s: %v", label, zname, f.Name, err)
			continue
		}
		zfiles[f.Name] = imageFile{mode: f.Mode().Perm(), data: data}
	}
	names := func(m map[string]imageFile) []string {
		var s []string
		for k := range m {
			s = append(s, k)
		}
		sort.Strings(s)
		return s
	}
	if got, want := names(files), names(zfiles); !slices.Equal(got, want) {
		p.addf("%s: holds %q under /%s, want the files of %s %q", label, got, imagePrefix, zname, want)
	}
	for _, rel := range names(files) {
		zf, ok := zfiles[rel]
		if !ok {
			continue
		}
		f := files[rel]
		if !bytes.Equal(f.data, zf.data) {
			p.addf("%s: /%s/%s differs from %s's %s", label, imagePrefix, rel, zname, rel)
		}
		if f.mode != zf.mode {
			p.addf("%s: /%s/%s has mode %03o, %s's %s has %03o", label, imagePrefix, rel, f.mode, zname, rel, zf.mode)
		}
	}
}

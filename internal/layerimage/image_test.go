package layerimage_test

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/internal/layerimage"
)

// tree writes a small layer tree for arch: an "extension" whose content
// names the architecture, the wrapper, and a helper.
func tree(t *testing.T, arch string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]struct {
		data string
		mode os.FileMode
	}{
		"extensions/credential-refresh":                   {"binary for " + arch, 0o755},
		"credential-refresh/exec-wrapper":                 {"#!/bin/sh\nexec \"$@\"\n", 0o755},
		"python/credential_refresh/__init__.py":           {"# helper\n", 0o644},
		"nodejs/node_modules/credential-refresh/index.js": {"// helper\n", 0o644},
	}
	for rel, f := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	return dir
}

var created = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func build(t *testing.T) (string, map[string]string) {
	t.Helper()
	trees := map[string]string{"amd64": tree(t, "amd64"), "arm64": tree(t, "arm64")}
	idx, err := layerimage.Index([]layerimage.Tree{{Arch: "amd64", Dir: trees["amd64"]}, {Arch: "arm64", Dir: trees["arm64"]}},
		layerimage.Options{Created: created, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "image")
	if err := layerimage.WriteLayout(out, idx); err != nil {
		t.Fatal(err)
	}
	return out, trees
}

// TestLayoutIsValidOCI reads the written layout back and checks it the way
// a registry or a container runtime would: OCI media types for the index,
// the manifests, the configs and the layers; digests and sizes that match
// the blobs (go-containerregistry's validate); both platforms; a config for
// linux/<arch> whose rootfs diff ID is the layer's.
func TestLayoutIsValidOCI(t *testing.T) {
	out, _ := build(t)
	var marker struct {
		Version string `json:"imageLayoutVersion"`
	}
	if b, err := os.ReadFile(filepath.Join(out, "oci-layout")); err != nil || json.Unmarshal(b, &marker) != nil || marker.Version != "1.0.0" {
		t.Fatalf("oci-layout marker: %s %v", b, err)
	}
	p, err := layout.FromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	root, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	rm, err := root.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(rm.Manifests) != 1 || rm.Manifests[0].MediaType != types.OCIImageIndex ||
		rm.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != layerimage.RefName {
		t.Fatalf("index.json: %+v; want one OCI image index tagged %q", rm.Manifests, layerimage.RefName)
	}
	idx, err := root.ImageIndex(rm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("index does not validate: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.SchemaVersion != 2 || im.MediaType != types.OCIImageIndex {
		t.Errorf("index: schemaVersion %d, mediaType %q", im.SchemaVersion, im.MediaType)
	}
	platforms := map[string]bool{}
	for _, d := range im.Manifests {
		if d.MediaType != types.OCIManifestSchema1 || d.Platform == nil || d.Platform.OS != "linux" {
			t.Fatalf("index entry %+v; want an OCI manifest for linux", d)
		}
		platforms[d.Platform.Architecture+d.Platform.Variant] = true
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("%s image does not validate: %v", d.Platform.Architecture, err)
		}
		checkImage(t, img, d.Platform)
	}
	if len(platforms) != 2 || !platforms["amd64"] || !platforms["arm64v8"] {
		t.Errorf("platforms %v; want amd64 and arm64/v8", platforms)
	}
}

func checkImage(t *testing.T, img v1.Image, want *v1.Platform) {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != 2 || m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("manifest: schemaVersion %d, mediaType %q, config %q", m.SchemaVersion, m.MediaType, m.Config.MediaType)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
		t.Fatalf("layers %+v; want one %s", m.Layers, types.OCILayer)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != want.OS || cf.Architecture != want.Architecture || cf.Variant != want.Variant {
		t.Errorf("config platform %s/%s/%s; index says %+v", cf.OS, cf.Architecture, cf.Variant, want)
	}
	if !cf.Created.Time.Equal(created) || cf.RootFS.Type != "layers" || len(cf.RootFS.DiffIDs) != 1 {
		t.Errorf("config: created %v, rootfs %+v", cf.Created, cf.RootFS)
	}
	diffID, _ := (mustLayer(t, img)).DiffID()
	if cf.RootFS.DiffIDs[0] != diffID {
		t.Errorf("rootfs diff ID %v, layer's %v", cf.RootFS.DiffIDs[0], diffID)
	}
	if len(cf.Config.Entrypoint)+len(cf.Config.Cmd) != 0 {
		t.Errorf("the image is data only, yet has entrypoint %v cmd %v", cf.Config.Entrypoint, cf.Config.Cmd)
	}
}

func mustLayer(t *testing.T, img v1.Image) v1.Layer {
	t.Helper()
	ls, err := img.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("layers: %v %v", ls, err)
	}
	return ls[0]
}

// TestLayerHoldsTheTreeUnderOpt checks the layer's tar entries: only /opt
// and the tree under it, root-owned, modes kept, one fixed time; and that
// Extract gives back each architecture's own files.
func TestLayerHoldsTheTreeUnderOpt(t *testing.T) {
	out, trees := build(t)
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := layerimage.ForArch(out, arch)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := mustLayer(t, img).Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		modes := map[string]int64{}
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			modes[h.Name] = h.Mode
			if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(created) {
				t.Errorf("%s: uid %d gid %d mtime %v", h.Name, h.Uid, h.Gid, h.ModTime)
			}
		}
		rc.Close()
		for name, mode := range map[string]int64{
			"opt/": 0o755, "opt/extensions/credential-refresh": 0o755, "opt/credential-refresh/exec-wrapper": 0o755,
			"opt/python/credential_refresh/__init__.py": 0o644, "opt/nodejs/node_modules/credential-refresh/index.js": 0o644,
		} {
			if got, ok := modes[name]; !ok || got != mode {
				t.Errorf("%s: entry %s mode %o (present %v), want %o", arch, name, got, ok, mode)
			}
		}
		dir := t.TempDir()
		if err := layerimage.Extract(img, dir); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "opt", "extensions", "credential-refresh"))
		want, _ := os.ReadFile(filepath.Join(trees[arch], "extensions", "credential-refresh"))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: extracted extension %q, want %q (%v)", arch, got, want, err)
		}
		if fi, err := os.Stat(filepath.Join(dir, "opt", "credential-refresh", "exec-wrapper")); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: extracted wrapper %v %v", arch, fi, err)
		}
	}
}

// TestReproducible: the same trees and options give the same index digest.
func TestReproducible(t *testing.T) {
	a, b := tree(t, "amd64"), tree(t, "arm64")
	digest := func() v1.Hash {
		idx, err := layerimage.Index([]layerimage.Tree{{Arch: "amd64", Dir: a}, {Arch: "arm64", Dir: b}}, layerimage.Options{Created: created})
		if err != nil {
			t.Fatal(err)
		}
		d, err := idx.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d1, d2 := digest(), digest(); d1 != d2 {
		t.Errorf("two builds: %v and %v", d1, d2)
	}
}

func TestRefusesOtherFileTypes(t *testing.T) {
	dir := tree(t, "amd64")
	if err := os.Symlink("extensions", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := layerimage.LayerTar(dir, created); err == nil {
		t.Error("a symlink was accepted")
	}
}

func TestWriteArchiveHoldsTheLayout(t *testing.T) {
	out, _ := build(t)
	ar := filepath.Join(t.TempDir(), "image.oci.tar")
	if err := layerimage.WriteArchive(out, ar); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(ar)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	names := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
	}
	if !names["oci-layout"] || !names["index.json"] || len(names) < 8 {
		t.Errorf("archive entries %v", names)
	}
}

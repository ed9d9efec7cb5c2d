package packaging

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"debug/elf"
	"encoding/binary"
	"hash/crc32"
	"io/fs"
	"maps"
	"os"
	pathpkg "path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The checks run here on crafted artifacts, so that each is known to fail
// on what it guards against and to pass on a good layer.

// craftELF returns a minimal 64-bit little-endian ELF header for machine
// with one PT_LOAD program header, and a PT_INTERP one if dynamic, followed
// by pad random (incompressible) bytes.
func craftELF(t *testing.T, machine elf.Machine, dynamic bool, pad int) []byte {
	t.Helper()
	progs := []elf.Prog64{{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X)}}
	if dynamic {
		progs = append(progs, elf.Prog64{Type: uint32(elf.PT_INTERP), Flags: uint32(elf.PF_R)})
	}
	h := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(machine), Version: uint32(elf.EV_CURRENT),
		Phoff: uint64(binary.Size(elf.Header64{})), Ehsize: uint16(binary.Size(elf.Header64{})),
		Phentsize: uint16(binary.Size(elf.Prog64{})), Phnum: uint16(len(progs)),
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, h); err != nil {
		t.Fatal(err)
	}
	if err := binary.Write(&buf, binary.LittleEndian, progs); err != nil {
		t.Fatal(err)
	}
	padding := make([]byte, pad)
	_, _ = rand.Read(padding)
	return append(buf.Bytes(), padding...)
}

// entry is one file of a crafted zip.
type entry struct {
	name    string
	data    []byte
	mode    fs.FileMode
	badCRC  bool // store a wrong CRC-32
	msdosOS bool // made by MS-DOS, as some zip tools on Windows do
}

// writeZip writes entries as a zip, after a 0755 directory entry for each
// directory they lie in (as zip -r writes them).
func writeZip(t *testing.T, entries []entry) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "layer.zip")
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, e := range entries {
		for d := pathpkg.Dir(e.name); d != "."; d = pathpkg.Dir(d) {
			dirs[d+"/"] = true
		}
	}
	for _, dir := range slices.Sorted(maps.Keys(dirs)) {
		h := &zip.FileHeader{Name: dir}
		h.SetMode(fs.ModeDir | 0o755)
		if _, err := zw.CreateHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Store}
		h.SetMode(e.mode) // sets the Unix creator and the mode
		if e.msdosOS {
			h.CreatorVersion &= 0xff // host 0: MS-DOS
			h.ExternalAttrs = 0
		}
		h.CRC32 = crc32.ChecksumIEEE(e.data)
		if e.badCRC {
			h.CRC32++
		}
		h.CompressedSize64, h.UncompressedSize64 = uint64(len(e.data)), uint64(len(e.data))
		w, err := zw.CreateRaw(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// sourceLayer reads the wrapper and the helpers from layer/.
func sourceLayer(t *testing.T) layerSources {
	t.Helper()
	src, err := readLayerSources(filepath.Join("..", "layer"))
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// goodLayer is the entries of a correct layer for arch: the extension
// first, the wrapper second, then the helpers (0644, as make installs them).
func goodLayer(t *testing.T, arch string) []entry {
	src := sourceLayer(t)
	es := []entry{
		{name: extensionPath, data: craftELF(t, machines[arch], false, 1024), mode: 0o755},
		{name: wrapperPath, data: src[wrapperPath], mode: 0o755},
	}
	for _, h := range helperPaths {
		es = append(es, entry{name: h, data: src[h], mode: 0o644})
	}
	return es
}

// withEntry returns es with the entry named name changed by f.
func withEntry(t *testing.T, es []entry, name string, f func(e *entry)) []entry {
	t.Helper()
	for i := range es {
		if es[i].name == name {
			f(&es[i])
			return es
		}
	}
	t.Fatalf("no entry %s", name)
	return nil
}

// without returns es without the entry named name.
func without(es []entry, name string) []entry {
	return slices.DeleteFunc(es, func(e entry) bool { return e.name == name })
}

// writeTree writes entries as a layer tree under root, modes past the umask.
func writeTree(t *testing.T, root string, es []entry) {
	t.Helper()
	for _, e := range es {
		p := filepath.Join(root, filepath.FromSlash(e.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, e.data, e.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, e.mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
}

// wantProblems fails t unless got is exactly one problem per wanted
// substring (none for a good artifact).
func wantProblems(t *testing.T, got problems, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("problems = %q, want %d containing %q", got, len(want), want)
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("problem %d = %q, want it to contain %q", i, got[i], w)
		}
	}
}

func TestLayerZipChecks(t *testing.T) {
	src := sourceLayer(t)
	wrapper := src[wrapperPath]
	pyHelper := "python/credential_refresh/__init__.py"
	mjsHelper := "nodejs/node_modules/credential-refresh/index.mjs"
	tests := []struct {
		name   string
		arch   string
		modify func(es []entry) []entry
		want   []string
	}{
		{name: "good x86_64 layer", arch: "x86_64"},
		{name: "good arm64 layer", arch: "arm64"},
		{
			name: "arm64 binary in the x86_64 zip", arch: "x86_64",
			modify: func(es []entry) []entry { es[0].data = craftELF(t, elf.EM_AARCH64, false, 0); return es },
			want:   []string{"ELF machine EM_AARCH64, want EM_X86_64 for x86_64"},
		},
		{
			name: "x86_64 binary in the arm64 zip", arch: "arm64",
			modify: func(es []entry) []entry { es[0].data = craftELF(t, elf.EM_X86_64, false, 0); return es },
			want:   []string{"ELF machine EM_X86_64, want EM_AARCH64 for arm64"},
		},
		{
			name: "extension without its executable bits", arch: "x86_64",
			modify: func(es []entry) []entry { es[0].mode = 0o644; return es },
			want:   []string{extensionPath + ": mode 644, want executable"},
		},
		{
			name: "extension executable by its owner only", arch: "x86_64",
			modify: func(es []entry) []entry { es[0].mode = 0o744; return es },
			want:   []string{extensionPath + ": mode 744, want executable"},
		},
		{
			name: "wrapper without its executable bits", arch: "arm64",
			modify: func(es []entry) []entry { es[1].mode = 0o644; return es },
			want:   []string{wrapperPath + ": mode 644, want executable"},
		},
		{
			name: "over 6 MB", arch: "x86_64",
			modify: func(es []entry) []entry { es[0].data = craftELF(t, elf.EM_X86_64, false, maxZipBytes); return es },
			want:   []string{"want at most 6000000 (6 MB)"},
		},
		{
			name: "dynamically linked extension", arch: "x86_64",
			modify: func(es []entry) []entry { es[0].data = craftELF(t, elf.EM_X86_64, true, 0); return es },
			want:   []string{"dynamically linked"},
		},
		{
			name: "extension that is not an ELF file", arch: "x86_64",
			modify: func(es []entry) []entry { es[0].data = []byte("#!/bin/sh\n"); return es },
			want:   []string{"not an ELF file"},
		},
		{
			name: "wrapper that is not the source's", arch: "x86_64",
			modify: func(es []entry) []entry { es[1].data = append([]byte("# edited\n"), wrapper...); return es },
			want:   []string{"differs from layer/" + wrapperPath},
		},
		{
			name: "entry made on MS-DOS, which loses the modes", arch: "x86_64",
			modify: func(es []entry) []entry { es[1].msdosOS = true; return es },
			want:   []string{"want a Unix regular-file entry", "want executable"},
		},
		{
			name: "wrong CRC", arch: "x86_64",
			modify: func(es []entry) []entry { es[1].badCRC = true; return es },
			want:   []string{"CRC does not verify"},
		},
		{
			name: "a third file", arch: "x86_64",
			modify: func(es []entry) []entry {
				return append(es, entry{name: "extensions/other", data: []byte("x"), mode: 0o644})
			},
			want: []string{"want exactly"},
		},
		{
			name: "wrapper missing", arch: "x86_64",
			modify: func(es []entry) []entry { return without(es, wrapperPath) },
			want:   []string{"want exactly", "top level holds"},
		},
		{
			name: "the Python helper missing", arch: "x86_64",
			modify: func(es []entry) []entry { return without(es, pyHelper) },
			// Its directory goes too, and with it python/ from the top level.
			want: []string{"want exactly the extension, the wrapper and the helpers", "top level holds"},
		},
		{
			name: "a Node helper missing", arch: "arm64",
			modify: func(es []entry) []entry { return without(es, "nodejs/node_modules/credential-refresh/index.d.ts") },
			want:   []string{"want exactly the extension, the wrapper and the helpers"},
		},
		{
			name: "a helper that differs from its source", arch: "arm64",
			modify: func(es []entry) []entry {
				return withEntry(t, es, mjsHelper, func(e *entry) { e.data = append(slices.Clone(e.data), "\n// edited\n"...) })
			},
			want: []string{mjsHelper + ": differs from layer/" + mjsHelper},
		},
		{
			name: "a helper readable by its owner only", arch: "x86_64",
			modify: func(es []entry) []entry { return withEntry(t, es, pyHelper, func(e *entry) { e.mode = 0o600 }) },
			want:   []string{pyHelper + ": mode 600, want readable by all"},
		},
		{
			name: "a helper not readable by others", arch: "x86_64",
			modify: func(es []entry) []entry { return withEntry(t, es, pyHelper, func(e *entry) { e.mode = 0o640 }) },
			want:   []string{pyHelper + ": mode 640, want readable by all"},
		},
		{
			name: "a stray file at the top level", arch: "x86_64",
			modify: func(es []entry) []entry { return append(es, entry{name: "README", data: []byte("x"), mode: 0o644}) },
			want:   []string{"want exactly", "top level holds"},
		},
		{
			name: "a stray top-level directory", arch: "x86_64",
			modify: func(es []entry) []entry { return append(es, entry{name: "lib/x.so", data: []byte("x"), mode: 0o644}) },
			want:   []string{"want exactly", "top level holds"},
		},
		{
			name: "a helper's __pycache__", arch: "x86_64",
			modify: func(es []entry) []entry {
				return append(es, entry{name: "python/credential_refresh/__pycache__/__init__.cpython-312.pyc", data: []byte("x"), mode: 0o644})
			},
			want: []string{"want exactly", "unexpected directory python/credential_refresh/__pycache__/"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := goodLayer(t, tt.arch)
			if tt.modify != nil {
				es = tt.modify(es)
			}
			var p problems
			p.checkLayerZip(writeZip(t, es), tt.arch, src, maxZipBytes)
			wantProblems(t, p, tt.want...)
		})
	}
}

func TestLayerTreeChecks(t *testing.T) {
	src := sourceLayer(t)
	idx := "nodejs/node_modules/credential-refresh/index.js"
	tests := []struct {
		name   string
		arch   string
		modify func(root string) error
		want   []string
	}{
		{name: "good tree", arch: "arm64"},
		{
			name: "wrong machine", arch: "x86_64",
			want: []string{"ELF machine EM_AARCH64"},
			modify: func(root string) error {
				return os.WriteFile(filepath.Join(root, extensionPath), craftELF(t, elf.EM_AARCH64, false, 0), 0o755)
			},
		},
		{
			name: "extension not executable", arch: "arm64",
			want:   []string{"mode 600, want executable"},
			modify: func(root string) error { return os.Chmod(filepath.Join(root, extensionPath), 0o600) },
		},
		{
			name: "wrapper not executable", arch: "arm64",
			want:   []string{wrapperPath + ": mode 644, want executable"},
			modify: func(root string) error { return os.Chmod(filepath.Join(root, wrapperPath), 0o644) },
		},
		{
			name: "a stray file", arch: "arm64",
			want:   []string{"want exactly", "top level holds"},
			modify: func(root string) error { return os.WriteFile(filepath.Join(root, "README"), nil, 0o644) },
		},
		{
			name: "an empty top-level directory", arch: "arm64",
			want:   []string{`top level holds ["credential-refresh" "extensions" "lib" "nodejs" "python"]`},
			modify: func(root string) error { return os.Mkdir(filepath.Join(root, "lib"), 0o755) },
		},
		{
			name: "a helper missing", arch: "arm64",
			want:   []string{"want exactly"},
			modify: func(root string) error { return os.Remove(filepath.Join(root, idx)) },
		},
		{
			name: "a helper that differs from its source", arch: "arm64",
			want: []string{idx + ": differs from layer/" + idx},
			modify: func(root string) error {
				return os.WriteFile(filepath.Join(root, idx), []byte("module.exports = {};\n"), 0o644)
			},
		},
		{
			name: "a helper readable by its owner only", arch: "arm64",
			want:   []string{idx + ": mode 600, want readable by all"},
			modify: func(root string) error { return os.Chmod(filepath.Join(root, idx), 0o600) },
		},
		{
			name: "a helper's directory closed to others", arch: "arm64",
			want:   []string{"nodejs/node_modules: directory mode 750, want readable and searchable by all"},
			modify: func(root string) error { return os.Chmod(filepath.Join(root, "nodejs", "node_modules"), 0o750) },
		},
		{
			name: "a symlink", arch: "arm64",
			want: []string{"want a regular file", "want exactly"},
			modify: func(root string) error {
				return os.Symlink(extensionPath, filepath.Join(root, "extensions", "link"))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, goodLayer(t, "arm64"))
			if tt.modify != nil {
				if err := tt.modify(root); err != nil {
					t.Fatal(err)
				}
			}
			var p problems
			p.checkLayerTree(root, "tree", tt.arch, src)
			wantProblems(t, p, tt.want...)
		})
	}
}

package packaging

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"debug/elf"
	"encoding/binary"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
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

func writeZip(t *testing.T, entries []entry) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "layer.zip")
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, dir := range []string{"credential-refresh/", "extensions/"} {
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

func sourceWrapper(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "layer", wrapperPath))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goodLayer is the entries of a correct layer for arch.
func goodLayer(t *testing.T, arch string) []entry {
	return []entry{
		{name: extensionPath, data: craftELF(t, machines[arch], false, 1024), mode: 0o755},
		{name: wrapperPath, data: sourceWrapper(t), mode: 0o755},
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
	wrapper := sourceWrapper(t)
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
			modify: func(es []entry) []entry { return es[:1] },
			want:   []string{"want exactly"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := goodLayer(t, tt.arch)
			if tt.modify != nil {
				es = tt.modify(es)
			}
			var p problems
			p.checkLayerZip(writeZip(t, es), tt.arch, wrapper, maxZipBytes)
			wantProblems(t, p, tt.want...)
		})
	}
}

func TestLayerTreeChecks(t *testing.T) {
	wrapper := sourceWrapper(t)
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
			want:   []string{"want exactly"},
			modify: func(root string) error { return os.WriteFile(filepath.Join(root, "README"), nil, 0o644) },
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
			for _, e := range goodLayer(t, "arm64") {
				p := filepath.Join(root, e.name)
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
			if tt.modify != nil {
				if err := tt.modify(root); err != nil {
					t.Fatal(err)
				}
			}
			var p problems
			p.checkLayerTree(root, "tree", tt.arch, wrapper)
			wantProblems(t, p, tt.want...)
		})
	}
}

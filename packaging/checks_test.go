package packaging

import (
	"archive/zip"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// The layer's contents: the only two files it may hold.
const (
	extensionPath = "extensions/credential-refresh"
	wrapperPath   = "credential-refresh/exec-wrapper"
)

// maxZipBytes is Lambda's "6 MB" for our layer zip, read strictly.
const maxZipBytes = 6_000_000

// machines maps a Lambda architecture to the ELF machine Lambda runs.
var machines = map[string]elf.Machine{"x86_64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// problems collects what is wrong with one artifact, one sentence each.
type problems []string

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// checkExecutable: Lambda runs the file as another user than the one that
// built it, so every executable bit must be set.
func (p *problems) checkExecutable(name string, mode fs.FileMode) {
	if mode&0o111 != 0o111 {
		p.addf("%s: mode %03o, want executable by all (0755)", name, mode.Perm())
	}
}

// checkELF checks a binary Lambda will run on arch (x86_64 or arm64): a
// 64-bit little-endian ELF of arch's machine, statically linked (no
// interpreter: provided.al2023 has no Go runtime libraries to rely on, and
// an extension runs on every runtime's image), and executable.
func (p *problems) checkELF(name string, r io.ReaderAt, mode fs.FileMode, arch string) {
	p.checkExecutable(name, mode)
	f, err := elf.NewFile(r)
	if err != nil {
		p.addf("%s: not an ELF file: %v", name, err)
		return
	}
	if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB {
		p.addf("%s: %v %v, want 64-bit little-endian ELF", name, f.Class, f.Data)
	}
	want, ok := machines[arch]
	if !ok {
		p.addf("%s: unknown architecture %q", name, arch)
	} else if f.Machine != want {
		p.addf("%s: ELF machine %v, want %v for %s", name, f.Machine, want, arch)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			p.addf("%s: dynamically linked (has an ELF interpreter), want a static binary", name)
		}
	}
}

// checkLayerZip checks a layer zip as Lambda will unpack it into /opt.
func (p *problems) checkLayerZip(path, arch string, wrapper []byte, maxBytes int64) {
	name := filepath.Base(path)
	st, err := os.Stat(path)
	if err != nil {
		p.addf("%s: %v", name, err)
		return
	}
	if st.Size() > maxBytes {
		p.addf("%s: %d bytes (%.2f MB), want at most %d (%g MB)", name, st.Size(), float64(st.Size())/1e6, maxBytes, float64(maxBytes)/1e6)
	}
	z, err := zip.OpenReader(path)
	if err != nil {
		p.addf("%s: not a zip: %v", name, err)
		return
	}
	defer z.Close()
	var files []string
	for _, f := range z.File {
		if f.FileInfo().IsDir() {
			if dir := strings.TrimSuffix(f.Name, "/"); dir != filepath.Dir(extensionPath) && dir != filepath.Dir(wrapperPath) {
				p.addf("%s: unexpected directory %s", name, f.Name)
			}
			continue
		}
		files = append(files, f.Name)
		p.checkZipEntry(name+":"+f.Name, f, arch, wrapper)
	}
	sort.Strings(files)
	if want := []string{wrapperPath, extensionPath}; !slices.Equal(files, want) {
		p.addf("%s: holds %q, want exactly %q", name, files, want)
	}
}

// creatorUnix is the "version made by" host of an entry whose external
// attributes carry a Unix mode; other hosts' entries lose the executable
// bits when unpacked.
const creatorUnix = 3

func (p *problems) checkZipEntry(name string, f *zip.File, arch string, wrapper []byte) {
	mode := f.Mode()
	if f.CreatorVersion>>8 != creatorUnix || !mode.IsRegular() {
		p.addf("%s: want a Unix regular-file entry (made by host %d, mode %v)", name, f.CreatorVersion>>8, mode)
	}
	data, err := readZipEntry(f) // to the end: archive/zip checks the CRC there
	if err != nil {
		p.addf("%s: %v", name, err)
		return
	}
	switch f.Name {
	case extensionPath:
		p.checkELF(name, bytes.NewReader(data), mode, arch)
	case wrapperPath:
		p.checkExecutable(name, mode)
		if !bytes.Equal(data, wrapper) {
			p.addf("%s: differs from layer/%s", name, wrapperPath)
		}
	}
}

func readZipEntry(f *zip.File) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if errors.Is(err, zip.ErrChecksum) {
		return nil, fmt.Errorf("CRC does not verify: %w", err)
	}
	return data, err
}

// checkLayerTree checks a layer directory: a built one (sam build) or an
// unpacked zip, named label in the messages.
func (p *problems) checkLayerTree(root, label, arch string, wrapper []byte) {
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		files = append(files, rel)
		if !d.Type().IsRegular() {
			p.addf("%s/%s: %v, want a regular file", label, rel, d.Type())
			return nil
		}
		return p.checkTreeFile(path, rel, label, arch, wrapper)
	})
	if err != nil {
		p.addf("%s: %v", label, err)
		return
	}
	if want := []string{wrapperPath, extensionPath}; !slices.Equal(files, want) {
		p.addf("%s: holds %q, want exactly %q", label, files, want)
	}
}

func (p *problems) checkTreeFile(path, rel, label, arch string, wrapper []byte) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	name := label + "/" + rel
	switch rel {
	case extensionPath:
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		p.checkELF(name, f, st.Mode(), arch)
	case wrapperPath:
		p.checkExecutable(name, st.Mode())
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Equal(data, wrapper) {
			p.addf("%s: differs from layer/%s", name, wrapperPath)
		}
	}
	return nil
}

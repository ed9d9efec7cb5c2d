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
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// The layer's contents, as paths in the layer (under /opt once unpacked).
const (
	extensionPath = "extensions/credential-refresh"
	wrapperPath   = "credential-refresh/exec-wrapper"
)

// helperPaths are the in-layer helpers, as paths under layer/ and in the
// layer: the Python package (/opt/python is on sys.path) and the Node
// package (/opt/nodejs/node_modules is on NODE_PATH). The Makefile's
// HELPERS lists the same files (TestHelpersMatchMakefile).
var helperPaths = []string{
	"python/credential_refresh/__init__.py",
	"nodejs/node_modules/credential-refresh/package.json",
	"nodejs/node_modules/credential-refresh/index.js",
	"nodejs/node_modules/credential-refresh/index.mjs",
	"nodejs/node_modules/credential-refresh/index.d.ts",
}

// topLevel is everything the layer's top level may hold (all directories).
var topLevel = []string{"credential-refresh", "extensions", "nodejs", "python"}

// layerFiles returns every file the layer holds, sorted: the extension, the
// wrapper and the helpers, nothing else.
func layerFiles() []string {
	files := append([]string{extensionPath, wrapperPath}, helperPaths...)
	sort.Strings(files)
	return files
}

// layerDirs returns the directories the layer's files lie in, with their
// ancestors: the only directories it may hold.
func layerDirs() map[string]bool {
	dirs := map[string]bool{}
	for _, f := range layerFiles() {
		for d := path.Dir(f); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	return dirs
}

// isHelper reports whether rel is one of the helpers.
func isHelper(rel string) bool { return slices.Contains(helperPaths, rel) }

// layerSources are the files the layer copies from layer/ (the wrapper and
// the helpers), by path in the layer: each must be copied byte for byte.
type layerSources map[string][]byte

// readLayerSources reads the wrapper and the helpers under dir (layer/).
func readLayerSources(dir string) (layerSources, error) {
	src := layerSources{}
	for _, rel := range append([]string{wrapperPath}, helperPaths...) {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return nil, err
		}
		src[rel] = b
	}
	return src, nil
}

// maxZipBytes is Lambda's "6 MB" for our layer zip, read strictly. The
// image of one architecture (manifest, config, gzip layer) keeps to it too.
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

// checkReadable: the helpers are read by the function's runtime, which on
// Lambda Managed Instances runs as uid 993, not as the files' owner.
func (p *problems) checkReadable(name string, mode fs.FileMode) {
	if mode&0o444 != 0o444 {
		p.addf("%s: mode %03o, want readable by all (0444: uid 993 on Lambda Managed Instances)", name, mode.Perm())
	}
}

// checkDirMode: a directory must be listable and searchable by all, or
// the files under it are out of reach of that other user.
func (p *problems) checkDirMode(name string, mode fs.FileMode) {
	if mode&0o555 != 0o555 {
		p.addf("%s: directory mode %03o, want readable and searchable by all (0555)", name, mode.Perm())
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

// checkLayerFile checks one file of the layer (in a zip, a tree or an
// image), rel being its path in the layer, by what it is: the extension,
// the wrapper or a helper.
func (p *problems) checkLayerFile(name, rel string, data []byte, mode fs.FileMode, arch string, src layerSources) {
	switch {
	case rel == extensionPath:
		p.checkELF(name, bytes.NewReader(data), mode, arch)
	case rel == wrapperPath:
		p.checkExecutable(name, mode)
		if !bytes.Equal(data, src[rel]) {
			p.addf("%s: differs from layer/%s", name, rel)
		}
	case isHelper(rel):
		p.checkReadable(name, mode)
		if !bytes.Equal(data, src[rel]) {
			p.addf("%s: differs from layer/%s", name, rel)
		}
	}
}

// checkLayout checks the names a layer holds: exactly the files of
// layerFiles, directories only on their way, and at the top level exactly
// topLevel. files and dirs are paths in the layer.
func (p *problems) checkLayout(label string, files, dirs []string) {
	sort.Strings(files)
	if want := layerFiles(); !slices.Equal(files, want) {
		p.addf("%s: holds %q, want exactly the extension, the wrapper and the helpers %q", label, files, want)
	}
	top := map[string]bool{}
	for _, name := range append(slices.Clone(files), dirs...) {
		first, _, _ := strings.Cut(name, "/")
		top[first] = true
	}
	var got []string
	for name := range top {
		got = append(got, name)
	}
	sort.Strings(got)
	if !slices.Equal(got, topLevel) {
		p.addf("%s: top level holds %q, want exactly %s/", label, got, strings.Join(topLevel, "/, "))
	}
	// Deeper directories (the top level's are checked above).
	allowed := layerDirs()
	for _, d := range dirs {
		if strings.Contains(d, "/") && !allowed[d] {
			p.addf("%s: unexpected directory %s/", label, d)
		}
	}
}

// checkLayerZip checks a layer zip as Lambda will unpack it into /opt.
func (p *problems) checkLayerZip(zipPath, arch string, src layerSources, maxBytes int64) {
	name := filepath.Base(zipPath)
	st, err := os.Stat(zipPath)
	if err != nil {
		p.addf("%s: %v", name, err)
		return
	}
	if st.Size() > maxBytes {
		p.addf("%s: %d bytes (%.2f MB), want at most %d (%g MB)", name, st.Size(), float64(st.Size())/1e6, maxBytes, float64(maxBytes)/1e6)
	}
	z, err := zip.OpenReader(zipPath)
	if err != nil {
		p.addf("%s: not a zip: %v", name, err)
		return
	}
	defer z.Close()
	var files, dirs []string
	for _, f := range z.File {
		if f.FileInfo().IsDir() {
			dir := strings.TrimSuffix(f.Name, "/")
			dirs = append(dirs, dir)
			p.checkDirMode(name+":"+f.Name, f.Mode())
			continue
		}
		files = append(files, f.Name)
		p.checkZipEntry(name+":"+f.Name, f, arch, src)
	}
	p.checkLayout(name, files, dirs)
}

// creatorUnix is the "version made by" host of an entry whose external
// attributes carry a Unix mode; other hosts' entries lose the executable
// bits when unpacked.
const creatorUnix = 3

func (p *problems) checkZipEntry(name string, f *zip.File, arch string, src layerSources) {
	mode := f.Mode()
	if f.CreatorVersion>>8 != creatorUnix || !mode.IsRegular() {
		p.addf("%s: want a Unix regular-file entry (made by host %d, mode %v)", name, f.CreatorVersion>>8, mode)
	}
	data, err := readZipEntry(f) // to the end: archive/zip checks the CRC there
	if err != nil {
		p.addf("%s: %v", name, err)
		return
	}
	p.checkLayerFile(name, f.Name, data, mode, arch, src)
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
func (p *problems) checkLayerTree(root, label, arch string, src layerSources) {
	var files, dirs []string
	err := filepath.WalkDir(root, func(fpath string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, fpath)
		rel = filepath.ToSlash(rel)
		name := label + "/" + rel
		if d.IsDir() {
			if rel != "." {
				dirs = append(dirs, rel)
				info, err := d.Info()
				if err != nil {
					return err
				}
				p.checkDirMode(name, info.Mode())
			}
			return nil
		}
		files = append(files, rel)
		if !d.Type().IsRegular() {
			p.addf("%s: %v, want a regular file", name, d.Type())
			return nil
		}
		st, err := os.Stat(fpath)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(fpath)
		if err != nil {
			return err
		}
		p.checkLayerFile(name, rel, data, st.Mode(), arch, src)
		return nil
	})
	if err != nil {
		p.addf("%s: %v", label, err)
		return
	}
	p.checkLayout(label, files, dirs)
}

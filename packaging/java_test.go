package packaging

import (
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// classMajor is the class file major version each Java runtime runs: the
// handler's class must be built for it (javac --release), not older by
// accident and not newer (UnsupportedClassVersionError at init).
var classMajor = map[string]uint16{"java21": 65, "java25": 69}

// javaSDKJars are the jars the Java example's lib/ must hold (globs): the
// AWS SDK for Java v2's S3 client and its URL-connection HTTP client.
var javaSDKJars = []string{"s3-*.jar", "url-connection-client-*.jar"}

// javaRICJar is the runtime interface client's jar, which the java21
// runtime provides: in the artifact it would shadow the runtime's own.
const javaRICJar = "aws-lambda-java-runtime-interface-client-*.jar"

// classFile is what the checks read from a class file.
type classFile struct {
	Major   uint16
	Access  uint16            // the class's access flags
	Name    string            // this_class, e.g. example/Handler
	Methods map[string]uint16 // method name -> access flags (of any overload)
}

const accPublic = 0x0001

var errShortClass = errors.New("truncated class file")

// parseClass reads a class file (JVMS §4.1) as far as its methods.
func parseClass(b []byte) (*classFile, error) {
	r := &classReader{b: b}
	if r.u4() != 0xCAFEBABE {
		return nil, errors.New("not a class file (no 0xCAFEBABE magic)")
	}
	r.u2() // minor
	c := &classFile{Major: r.u2(), Methods: map[string]uint16{}}
	n := int(r.u2())
	utf8 := map[uint16]string{}
	classes := map[uint16]uint16{} // Class entry -> its name's Utf8 entry
	for i := 1; i < n && r.err == nil; i++ {
		switch tag := r.u1(); tag {
		case 1: // Utf8
			utf8[uint16(i)] = string(r.bytes(int(r.u2())))
		case 7: // Class
			classes[uint16(i)] = r.u2()
		case 8, 16, 19, 20: // String, MethodType, Module, Package
			r.skip(2)
		case 15: // MethodHandle
			r.skip(3)
		case 3, 4, 9, 10, 11, 12, 17, 18: // Integer, Float, refs, NameAndType, (Invoke)Dynamic
			r.skip(4)
		case 5, 6: // Long, Double: two entries
			r.skip(8)
			i++
		default:
			return nil, fmt.Errorf("constant pool entry %d: unknown tag %d", i, tag)
		}
	}
	c.Access = r.u2()
	c.Name = utf8[classes[r.u2()]]
	r.u2() // super_class
	r.skip(2 * int(r.u2()))
	members := func(each func(access uint16, name string)) {
		for n := int(r.u2()); n > 0 && r.err == nil; n-- {
			access, name := r.u2(), r.u2()
			r.u2() // descriptor
			for a := int(r.u2()); a > 0 && r.err == nil; a-- {
				r.u2()
				r.skip(int(r.u4()))
			}
			each(access, utf8[name])
		}
	}
	members(func(uint16, string) {}) // fields
	members(func(access uint16, name string) { c.Methods[name] |= access })
	for a := int(r.u2()); a > 0 && r.err == nil; a-- { // the class's attributes
		r.u2()
		r.skip(int(r.u4()))
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) > 0 {
		return nil, fmt.Errorf("%d extra bytes after the class file's end", len(r.b))
	}
	return c, nil
}

type classReader struct {
	b   []byte
	err error
}

func (r *classReader) bytes(n int) []byte {
	if r.err != nil || n > len(r.b) {
		r.err = errShortClass
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}
func (r *classReader) skip(n int) { r.bytes(n) }
func (r *classReader) u1() byte {
	if v := r.bytes(1); v != nil {
		return v[0]
	}
	return 0
}
func (r *classReader) u2() uint16 {
	if v := r.bytes(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}
func (r *classReader) u4() uint32 {
	if v := r.bytes(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

// checkJava checks a built Java function in dir the way the java runtime
// will load it (the java21 layout: classes at the top, jars in lib/): the
// handler's class, Class::method, is a public class file for the runtime's
// Java with a public method of that name; lib/ holds the AWS SDK for Java
// v2 (javaSDKJars), every jar a readable zip, and not the runtime interface
// client, which the runtime provides.
func (p *problems) checkJava(label, dir, runtime, handler string) {
	want, ok := classMajor[runtime]
	if !ok {
		p.addf("%s: no class file version known for runtime %q", label, runtime)
		return
	}
	class, method, ok := strings.Cut(handler, "::")
	if !ok || class == "" || method == "" {
		p.addf("%s: handler %q, want package.Class::method", label, handler)
		return
	}
	internal := strings.ReplaceAll(class, ".", "/")
	rel := internal + ".class"
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		p.addf("%s: the handler's class: %v", label, err)
	} else if c, err := parseClass(b); err != nil {
		p.addf("%s: %s: %v", label, rel, err)
	} else {
		if c.Major != want {
			p.addf("%s: %s: class file version %d, want %d for %s", label, rel, c.Major, want, runtime)
		}
		if c.Name != internal {
			p.addf("%s: %s holds class %s, want %s", label, rel, c.Name, internal)
		}
		if c.Access&accPublic == 0 {
			p.addf("%s: %s: class %s is not public", label, rel, class)
		}
		if access, ok := c.Methods[method]; !ok {
			p.addf("%s: %s: class %s has no method %s", label, rel, class, method)
		} else if access&accPublic == 0 {
			p.addf("%s: %s: method %s is not public", label, rel, method)
		}
	}
	lib := filepath.Join(dir, "lib")
	for _, glob := range javaSDKJars {
		if m, _ := filepath.Glob(filepath.Join(lib, glob)); len(m) == 0 {
			p.addf("%s: no lib/%s (the AWS SDK for Java v2)", label, glob)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(lib, javaRICJar)); len(m) > 0 {
		p.addf("%s: lib/ holds the runtime interface client (%s), which the %s runtime provides", label, filepath.Base(m[0]), runtime)
	}
	jars, _ := filepath.Glob(filepath.Join(lib, "*.jar"))
	for _, jar := range jars {
		z, err := zip.OpenReader(jar)
		if err != nil {
			p.addf("%s: lib/%s is not a jar: %v", label, filepath.Base(jar), err)
			continue
		}
		z.Close()
	}
}

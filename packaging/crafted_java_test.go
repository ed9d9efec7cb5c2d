package packaging

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// craftedClass describes a class file to craft.
type craftedClass struct {
	major        uint16
	name         string // this_class, internal form
	access       uint16
	method       string
	methodAccess uint16
}

// craftClass writes a small but well-formed class file: a constant pool
// with Utf8, Class and Long entries (a Long takes two slots), one field and
// one method, each with an attribute, as parseClass must skip them.
func craftClass(t *testing.T, c craftedClass) []byte {
	t.Helper()
	var b bytes.Buffer
	w := func(vs ...any) {
		for _, v := range vs {
			if err := binary.Write(&b, binary.BigEndian, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	utf8 := func(s string) { w(uint8(1), uint16(len(s))); b.WriteString(s) }
	w(uint32(0xCAFEBABE), uint16(0), c.major)
	w(uint16(11))                                  // constant_pool_count: entries 1..10
	utf8(c.name)                                   // 1
	w(uint8(7), uint16(1))                         // 2: Class #1
	utf8("java/lang/Object")                       // 3
	w(uint8(7), uint16(3))                         // 4: Class #3
	w(uint8(5), uint64(1))                         // 5 and 6: a Long
	utf8(c.method)                                 // 7
	utf8("(Ljava/lang/Object;)Ljava/lang/Object;") // 8
	utf8("Code")                                   // 9
	utf8("count")                                  // 10
	w(c.access, uint16(2), uint16(4), uint16(0))   // access, this #2, super #4, no interfaces
	// One field, count, with a 2-byte attribute.
	w(uint16(1), uint16(0x0002), uint16(10), uint16(8), uint16(1), uint16(9), uint32(2), uint16(0))
	// One method with a 3-byte Code attribute.
	w(uint16(1), c.methodAccess, uint16(7), uint16(8), uint16(1), uint16(9), uint32(3), []byte{0, 0, 0})
	// One class attribute (4 bytes).
	w(uint16(1), uint16(9), uint32(4), uint32(0))
	return b.Bytes()
}

func goodClass() craftedClass {
	return craftedClass{major: 65, name: "example/Handler", access: accPublic, method: "handleRequest", methodAccess: accPublic}
}

// writeJar writes a jar (a zip) with one entry.
func writeJar(t *testing.T, path string) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("META-INF/MANIFEST.MF")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("Manifest-Version: 1.0\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, buf.Bytes())
}

func TestParseClass(t *testing.T) {
	c, err := parseClass(craftClass(t, goodClass()))
	if err != nil {
		t.Fatal(err)
	}
	if c.Major != 65 || c.Name != "example/Handler" || c.Access != accPublic || c.Methods["handleRequest"] != accPublic || len(c.Methods) != 1 {
		t.Errorf("parseClass = %+v", c)
	}
	good := craftClass(t, goodClass())
	for n := 0; n < len(good); n++ {
		if _, err := parseClass(good[:n]); err == nil {
			t.Fatalf("parseClass of the first %d of %d bytes: no error", n, len(good))
		}
	}
	if _, err := parseClass(append(good, 0)); err == nil {
		t.Fatal("parseClass with a byte past the end: no error")
	}
}

func TestJavaChecks(t *testing.T) {
	class := filepath.Join("example", "Handler.class")
	tests := []struct {
		name    string
		runtime string
		handler string
		modify  func(t *testing.T, dir string)
		want    []string
	}{
		{name: "good java21 artifact"},
		{
			name: "a Java 17 class file",
			modify: func(t *testing.T, dir string) {
				c := goodClass()
				c.major = 61
				writeFile(t, filepath.Join(dir, class), craftClass(t, c))
			},
			want: []string{"class file version 61, want 65 for java21"},
		},
		{
			name: "a Java 25 class file for java21",
			modify: func(t *testing.T, dir string) {
				c := goodClass()
				c.major = 69
				writeFile(t, filepath.Join(dir, class), craftClass(t, c))
			},
			want: []string{"class file version 69, want 65 for java21"},
		},
		{
			name:   "the handler's class missing",
			modify: func(t *testing.T, dir string) { remove(t, filepath.Join(dir, class)) },
			want:   []string{"the handler's class"},
		},
		{
			name:   "not a class file",
			modify: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, class), []byte("package example;\n")) },
			want:   []string{"not a class file"},
		},
		{
			name: "a truncated class file",
			modify: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, class), craftClass(t, goodClass())[:40])
			},
			want: []string{"truncated class file"},
		},
		{
			name: "another class in the handler's file",
			modify: func(t *testing.T, dir string) {
				c := goodClass()
				c.name = "example/Other"
				writeFile(t, filepath.Join(dir, class), craftClass(t, c))
			},
			want: []string{"holds class example/Other, want example/Handler"},
		},
		{
			name: "a class that is not public",
			modify: func(t *testing.T, dir string) {
				c := goodClass()
				c.access = 0
				writeFile(t, filepath.Join(dir, class), craftClass(t, c))
			},
			want: []string{"class example.Handler is not public"},
		},
		{
			name: "no handler method",
			modify: func(t *testing.T, dir string) {
				c := goodClass()
				c.method = "handle"
				writeFile(t, filepath.Join(dir, class), craftClass(t, c))
			},
			want: []string{"has no method handleRequest"},
		},
		{
			name: "a private handler method",
			modify: func(t *testing.T, dir string) {
				c := goodClass()
				c.methodAccess = 0x0002
				writeFile(t, filepath.Join(dir, class), craftClass(t, c))
			},
			want: []string{"method handleRequest is not public"},
		},
		{
			name:   "no S3 client jar",
			modify: func(t *testing.T, dir string) { remove(t, filepath.Join(dir, "lib", "s3-2.31.0.jar")) },
			want:   []string{"no lib/s3-*.jar"},
		},
		{
			name: "no URL-connection client jar",
			modify: func(t *testing.T, dir string) {
				remove(t, filepath.Join(dir, "lib", "url-connection-client-2.31.0.jar"))
			},
			want: []string{"no lib/url-connection-client-*.jar"},
		},
		{
			name: "the runtime interface client in lib/",
			modify: func(t *testing.T, dir string) {
				writeJar(t, filepath.Join(dir, "lib", "aws-lambda-java-runtime-interface-client-2.10.1.jar"))
			},
			want: []string{"lib/ holds the runtime interface client"},
		},
		{
			name: "a jar that is not a zip",
			modify: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "lib", "sdk-core-2.31.0.jar"), []byte("not a zip"))
			},
			want: []string{"lib/sdk-core-2.31.0.jar is not a jar"},
		},
		{name: "a handler without ::", handler: "example.Handler", want: []string{`want package.Class::method`}},
		{name: "a runtime without a known class version", runtime: "java8.al2", want: []string{`no class file version known for runtime "java8.al2"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, class), craftClass(t, goodClass()))
			for _, jar := range []string{"s3-2.31.0.jar", "url-connection-client-2.31.0.jar", "sdk-core-2.31.0.jar", "aws-lambda-java-core-1.2.3.jar"} {
				writeJar(t, filepath.Join(dir, "lib", jar))
			}
			if tt.modify != nil {
				tt.modify(t, dir)
			}
			var p problems
			p.checkJava("JavaExampleFunction", dir, cmpOr(tt.runtime, "java21"), cmpOr(tt.handler, "example.Handler::handleRequest"))
			wantProblems(t, p, tt.want...)
		})
	}
}

// TestCheckFunctionRuntimes: checkFunction sends a Java function to
// checkJava and fails a runtime it has no check for.
func TestCheckFunctionRuntimes(t *testing.T) {
	build := t.TempDir()
	dir := filepath.Join(build, "JavaExampleFunction")
	writeFile(t, filepath.Join(dir, "example", "Handler.class"), craftClass(t, goodClass()))
	for _, jar := range []string{"s3-2.31.0.jar", "url-connection-client-2.31.0.jar"} {
		writeJar(t, filepath.Join(dir, "lib", jar))
	}
	fn := function{ID: "JavaExampleFunction", Runtime: "java21", Handler: "example.Handler::handleRequest", CodeUri: "JavaExampleFunction"}
	wantProblems(t, checkFunction("..", build, fn, "x86_64"))
	fn.Handler = "example.Missing::handleRequest"
	wantProblems(t, checkFunction("..", build, fn, "x86_64"), "the handler's class")
	fn.Runtime = "ruby3.3"
	wantProblems(t, checkFunction("..", build, fn, "x86_64"), `no packaging check for runtime "ruby3.3"`)
}

// TestTemplateFunctions: the source template's functions, read past its
// short-form tags, are the four examples.
func TestTemplateFunctions(t *testing.T) {
	got, err := templateFunctions(filepath.Join("..", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"GoExampleFunction", "JavaExampleFunction", "NodeExampleFunction", "PythonExampleFunction"}
	if !slices.Equal(got, want) {
		t.Errorf("templateFunctions = %q, want %q", got, want)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

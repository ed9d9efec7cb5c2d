// Command layer-image writes the credential-refresh layer as an OCI image
// (one image per architecture in an OCI image index), without Docker:
//
//	go run ./cmd/layer-image -amd64 build/layer-x86_64 -arm64 build/layer-arm64 \
//	    -out build/credential-refresh-image -archive build/credential-refresh-image.oci.tar
//
// `make image` runs it on the trees `make layer` zips, so the image holds the
// same binaries as the zips. See internal/layerimage.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/internal/layerimage"
)

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "layer-image:", err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("layer-image", flag.ContinueOnError)
	amd64 := fs.String("amd64", "", "the amd64 (x86_64) layer tree")
	arm64 := fs.String("arm64", "", "the arm64 layer tree")
	out := fs.String("out", "", "the OCI image layout directory to write (replaced)")
	archive := fs.String("archive", "", "also write the layout as this OCI archive (tar)")
	version := fs.String("version", "dev", "org.opencontainers.image.version")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *amd64 == "" || *arm64 == "" || *out == "" {
		return fmt.Errorf("-amd64, -arm64 and -out are required")
	}
	// SOURCE_DATE_EPOCH (reproducible-builds.org) fixes every timestamp;
	// without it, the Unix epoch.
	created := time.Unix(0, 0).UTC()
	if s := getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", s, err)
		}
		created = time.Unix(sec, 0).UTC()
	}
	idx, err := layerimage.Index([]layerimage.Tree{{Arch: "amd64", Dir: *amd64}, {Arch: "arm64", Dir: *arm64}},
		layerimage.Options{Created: created, Version: *version})
	if err != nil {
		return err
	}
	if err := layerimage.WriteLayout(*out, idx); err != nil {
		return err
	}
	d, _ := idx.Digest()
	fmt.Fprintf(stdout, "%s: OCI image index %s (linux/amd64, linux/arm64/v8), layout size %s\n", *out, d, size(*out))
	if *archive != "" {
		if err := layerimage.WriteArchive(*out, *archive); err != nil {
			return err
		}
		fi, err := os.Stat(*archive)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %d bytes\n", *archive, fi.Size())
	}
	return nil
}

func size(dir string) string {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return strconv.FormatInt(n, 10) + " bytes"
}

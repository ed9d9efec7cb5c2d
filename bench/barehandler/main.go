// Command barehandler is the reference that bench-compare measures the
// extension against: a bare Go net/http handler writing the same bytes with
// the same headers, and no checks at all; with -extension, a minimal
// Lambda extension that registers and waits for events, for the init time.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:0", "address to serve on")
	bodyFile := flag.String("body", "", "file holding the response body")
	ext := flag.Bool("extension", false, "register with AWS_LAMBDA_RUNTIME_API as an extension and wait for SHUTDOWN")
	flag.Parse()
	if *ext {
		if err := extension(os.Getenv("AWS_LAMBDA_RUNTIME_API")); err != nil {
			fmt.Fprintln(os.Stderr, "barehandler:", err)
			os.Exit(1)
		}
		return
	}
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "barehandler:", err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "barehandler:", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String()) // the driver reads the address
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	_ = (&http.Server{Handler: h, ReadHeaderTimeout: 2 * time.Second}).Serve(ln)
}

// extension registers for SHUTDOWN and waits for it.
func extension(api string) error {
	req, _ := http.NewRequest(http.MethodPost, "http://"+api+"/2020-01-01/extension/register",
		bytes.NewReader([]byte(`{"events":["SHUTDOWN"]}`)))
	req.Header.Set("Lambda-Extension-Name", "barehandler")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	id := resp.Header.Get("Lambda-Extension-Identifier")
	req, _ = http.NewRequest(http.MethodGet, "http://"+api+"/2020-01-01/extension/event/next", nil)
	req.Header.Set("Lambda-Extension-Identifier", id)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

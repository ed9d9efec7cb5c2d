// Command trapproxy is the outbound-connection trap of
// scripts/check-packaging.sh: an HTTP proxy on 127.0.0.1 that refuses every
// request, CONNECT included, with 403 and appends "METHOD TARGET" to a log,
// one line per attempt. It prints its port on stdout, then serves until it
// is killed.
//
//	trapproxy LOGFILE
package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: trapproxy LOGFILE")
		os.Exit(2)
	}
	f, err := os.OpenFile(os.Args[1], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	srv := &http.Server{Handler: trap(f), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(l))
}

// trap refuses every request and writes its method and target to w: the
// host:port of a CONNECT, the absolute URL of a proxied plain-HTTP request.
func trap(w io.Writer) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fmt.Fprintf(w, "%s %s\n", r.Method, r.RequestURI)
		mu.Unlock()
		http.Error(rw, "blocked by scripts/check-packaging.sh", http.StatusForbidden)
	})
}

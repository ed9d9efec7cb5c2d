package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// load is one run of requests against a server.
type load struct {
	clients int
	fresh   bool          // a new connection per request (else keep-alive)
	dur     time.Duration // run this long, or
	count   int64         // send this many requests
}

// outcome is what one run measured.
type outcome struct {
	requests int64
	elapsed  time.Duration
	cpu      time.Duration // the server's CPU time during the run
	p50      time.Duration
}

func (o outcome) perSecond() float64 { return float64(o.requests) / o.elapsed.Seconds() }
func (o outcome) cpuPerRequest() time.Duration {
	return time.Duration(int64(o.cpu) / max(o.requests, 1))
}

// run sends GET /v1/credentials from l.clients clients, each writing a
// prebuilt HTTP/1.1 request and reading the response itself: a lean client,
// so that the servers' differences are not drowned in the client's cost.
// Every response must be 200 with a body.
func (l load) run(s *server) (outcome, error) {
	req := []byte("GET /v1/credentials HTTP/1.1\r\nHost: " + s.addr + "\r\nAuthorization: " + s.token + "\r\nUser-Agent: bench-compare\r\n")
	if l.fresh {
		req = append(req, "Connection: close\r\n"...)
	}
	req = append(req, "\r\n"...)
	cpu0, err := cpuTime(s.pid())
	if err != nil {
		return outcome{}, err
	}
	var sent atomic.Int64
	var stop atomic.Bool
	lat := make([][]time.Duration, l.clients)
	errs := make(chan error, l.clients)
	var wg sync.WaitGroup
	start := time.Now()
	if l.dur > 0 {
		time.AfterFunc(l.dur, func() { stop.Store(true) })
	}
	for c := range l.clients {
		wg.Go(func() {
			errs <- l.client(s.addr, req, &sent, &stop, &lat[c])
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			return outcome{}, err
		}
	}
	cpu1, err := cpuTime(s.pid())
	if err != nil {
		return outcome{}, err
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	o := outcome{requests: int64(len(all)), elapsed: elapsed, cpu: cpu1 - cpu0}
	if len(all) > 0 {
		o.p50 = all[len(all)/2]
	}
	return o, nil
}

// client is one client's loop.
func (l load) client(addr string, req []byte, sent *atomic.Int64, stop *atomic.Bool, lat *[]time.Duration) error {
	var conn net.Conn
	var rd *bufio.Reader
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for !stop.Load() {
		if l.count > 0 && sent.Add(1) > l.count {
			return nil
		}
		t := time.Now()
		if conn == nil {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			conn, rd = c, bufio.NewReaderSize(c, 4096)
		}
		if _, err := conn.Write(req); err != nil {
			return err
		}
		if err := readResponse(rd); err != nil {
			return err
		}
		*lat = append(*lat, time.Since(t))
		if l.fresh {
			conn.Close()
			conn = nil
		}
	}
	return nil
}

var errStatus = errors.New("not 200")

// readResponse reads one response (status 200, Content-Length body).
func readResponse(rd *bufio.Reader) error {
	line, err := rd.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("%w: %q", errStatus, bytes.TrimSpace(line))
	}
	n := -1
	for {
		h, err := rd.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(h) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(h, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if n <= 0 {
		return errors.New("no Content-Length")
	}
	_, err = rd.Discard(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

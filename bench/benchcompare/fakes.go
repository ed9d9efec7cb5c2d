package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// extensionsAPI is a fake Lambda Extensions API for one process: it notes
// when /register arrives, and answers /event/next with SHUTDOWN once
// shutdown is called.
type extensionsAPI struct {
	srv        *http.Server
	addr       string
	registered chan time.Time
	stop       chan struct{}
	once       sync.Once
	stsCalls   func() int64 // STS calls so far, read at /register
	callsAtReg atomic.Int64 // STS calls since this API started, at /register
}

func newExtensionsAPI(stsCalls func() int64) (*extensionsAPI, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &extensionsAPI{addr: ln.Addr().String(), registered: make(chan time.Time, 1), stop: make(chan struct{}), stsCalls: stsCalls}
	base := stsCalls() // the fake STS serves every process of the run
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2020-01-01/extension/register", func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		a.callsAtReg.Store(a.stsCalls() - base)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Lambda-Extension-Identifier", "bench-ext")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"functionName":"bench","functionVersion":"$LATEST","handler":"h","accountId":"123456789012"}`)
		select {
		case a.registered <- at:
		default:
		}
	})
	mux.HandleFunc("GET /2020-01-01/extension/event/next", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-a.stop:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":%d}`, time.Now().Add(2*time.Second).UnixMilli())
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("POST /2020-01-01/extension/{kind}/error", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	})
	a.srv = &http.Server{Handler: mux}
	go func() { _ = a.srv.Serve(ln) }()
	return a, nil
}

func (a *extensionsAPI) shutdown() { a.once.Do(func() { close(a.stop) }) }

func (a *extensionsAPI) close() {
	a.shutdown()
	_ = a.srv.Close()
}

// fakeSTS answers every AssumeRole with fresh 1 h credentials whose
// session token has tokenLen characters, as STS's do (a few hundred).
type fakeSTS struct {
	srv   *http.Server
	url   string
	calls atomic.Int64
}

const tokenLen = 356 // makes the credentials body about 530 bytes, as in issue 10

func newFakeSTS() (*fakeSTS, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &fakeSTS{url: "http://" + ln.Addr().String()}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.calls.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/xml")
		w.Header().Set("X-Amzn-Requestid", fmt.Sprintf("bench-%d", n))
		fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
<AssumedRoleUser><AssumedRoleId>AROABENCH:bench</AssumedRoleId><Arn>arn:aws:sts::123456789012:assumed-role/bench/bench</Arn></AssumedRoleUser>
<Credentials><AccessKeyId>ASIABENCH%011d</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>
</AssumeRoleResult><ResponseMetadata><RequestId>bench-%d</RequestId></ResponseMetadata></AssumeRoleResponse>`,
			n, random(40), random(tokenLen), time.Now().Add(time.Hour).UTC().Format(time.RFC3339), n)
	})}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

// Package memnet is an in-memory TCP stand-in for tests that run in a
// testing/synctest bubble, whose clock cannot advance while a goroutine
// waits on a real socket. A Network holds listeners by address; a dial
// connects through net.Pipe, and each end reports the TCP addresses a real
// connection would have (the server checks the port a request arrived on).
package memnet

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
)

// Network is a set of in-memory listeners, by "host:port".
type Network struct {
	mu        sync.Mutex
	listeners map[string]*Listener
	nextPort  int
}

// New returns an empty network.
func New() *Network { return &Network{listeners: map[string]*Listener{}, nextPort: 40000} }

// Listen listens on addr ("127.0.0.1:2775"); it fails if something already
// listens there, as a real bind would.
func (n *Network) Listen(addr string) (net.Listener, error) {
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, taken := n.listeners[addr]; taken {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Addr: tcp, Err: fmt.Errorf("address already in use")}
	}
	l := &Listener{net: n, key: addr, addr: tcp, conns: make(chan net.Conn), closed: make(chan struct{})}
	n.listeners[addr] = l
	return l, nil
}

// Dial connects to the listener on addr, or fails as a refused connection.
func (n *Network) Dial(ctx context.Context, addr string) (net.Conn, error) {
	n.mu.Lock()
	l, ok := n.listeners[addr]
	n.nextPort++
	client := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: n.nextPort}
	n.mu.Unlock()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf("connection refused")}
	if !ok {
		return nil, refused
	}
	c1, c2 := net.Pipe()
	select {
	case l.conns <- conn{c2, l.addr, client}:
		return conn{c1, client, l.addr}, nil
	case <-l.closed:
		return nil, refused
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Client is an HTTP client whose connections go through the network.
func (n *Network) Client() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
		return n.Dial(ctx, addr)
	}}}
}

// Listening reports whether something listens on 127.0.0.1:port.
func (n *Network) Listening(port int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.listeners[net.JoinHostPort("127.0.0.1", strconv.Itoa(port))]
	return ok
}

// Listener is one in-memory listener.
type Listener struct {
	net    *Network
	key    string
	addr   *net.TCPAddr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

// Accept waits for a dial.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops listening.
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.net.mu.Lock()
		delete(l.net.listeners, l.key)
		l.net.mu.Unlock()
	})
	return nil
}

// Addr is the address listened on.
func (l *Listener) Addr() net.Addr { return l.addr }

// conn is one end of a pipe with TCP addresses.
type conn struct {
	net.Conn
	local, remote net.Addr
}

func (c conn) LocalAddr() net.Addr  { return c.local }
func (c conn) RemoteAddr() net.Addr { return c.remote }

// HandlerTransport is an http.RoundTripper that serves each request by
// calling h in-process, with no connection at all: for fakes whose tests
// need neither keep-alive nor streaming. A request whose context ends
// while h runs fails with the context's error, as over a network.
func HandlerTransport(h http.Handler) http.RoundTripper { return handlerTransport{h} }

type handlerTransport struct{ h http.Handler }

func (rt handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	rt.h.ServeHTTP(rec, r)
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	return rec.Result(), nil
}

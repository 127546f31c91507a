package minhttp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// serve runs a Server with h on a loopback port until the test ends.
func serve(t *testing.T, h Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{Handler: h, Timeout: 30 * time.Second}).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func testMux() *ServeMux {
	m := NewServeMux()
	m.Handle("GET /hello", HandlerFunc(func(w *ResponseWriter, r *Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-Name"))
	}))
	m.Handle("POST /count", HandlerFunc(func(w *ResponseWriter, r *Request) { io.WriteString(w, "counted") }))
	return m
}

// The standard library's client, a real peer, is answered: status, body,
// length, routing by method and path, the query ignored.
func TestServerAnswersNetHTTP(t *testing.T) {
	addr := serve(t, testMux())
	for _, c := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/hello?x=1", 200, "hello gopher"},
		{"POST", "/count", 200, "counted"},
		{"GET", "/count", 405, "method not allowed\n"},
		{"GET", "/nothing", 404, "not found\n"},
	} {
		req, _ := http.NewRequest(c.method, "http://"+addr+c.path, nil)
		req.Header.Set("X-Name", "gopher")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", c.method, c.path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != c.status || string(b) != c.body || resp.ContentLength != int64(len(c.body)) {
			t.Errorf("%s %s: %d %q (length %d, %v), want %d %q", c.method, c.path, resp.StatusCode, b, resp.ContentLength, err, c.status, c.body)
		}
	}
}

// Malformed or unsupported requests are answered with the code that says
// why, never handed to the handler.
func TestServerRefuses(t *testing.T) {
	called := false
	addr := serve(t, HandlerFunc(func(w *ResponseWriter, r *Request) { called = true }))
	for _, c := range []struct {
		name, req string
		status    int
	}{
		{"no protocol", "GET /\r\n\r\n", 400},
		{"not a path", "GET x HTTP/1.1\r\n\r\n", 400},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400},
		{"HTTP/3", "GET / HTTP/3\r\n\r\n", 505},
		{"chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501},
		{"bad length", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
		{"huge body", "POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413},
		{"huge header", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", MaxHeaderBytes) + "\r\n\r\n", 431},
		{"bad header", "GET / HTTP/1.1\r\nno colon\r\n\r\n", 400},
	} {
		c := c
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			go io.WriteString(conn, c.req)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Errorf("%d, want %d", resp.StatusCode, c.status)
			}
		})
	}
	if called {
		t.Error("the handler was given a refused request")
	}
}

// A request's short body is read past, and the request answered.
func TestServerReadsPastABody(t *testing.T) {
	addr := serve(t, testMux())
	resp, err := http.Post("http://"+addr+"/count", "text/plain", strings.NewReader(strings.Repeat("x", 10000)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "counted" {
		t.Errorf("%d %q", resp.StatusCode, b)
	}
}

// Do reads the standard library server's answers, and Serve's.
func TestDo(t *testing.T) {
	std := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/nolength" {
			w.(http.Flusher).Flush() // no Content-Length: chunked, refused
		}
		w.Header().Set("X-Method", r.Method)
		io.WriteString(w, "from "+r.URL.Path)
	}))
	defer std.Close()
	mine := serve(t, testMux())
	for _, c := range []struct {
		addr, method, path string
		status             int
		body, err          string
	}{
		{std.Listener.Addr().String(), "POST", "/x", 200, "from /x", ""},
		{std.Listener.Addr().String(), "GET", "/nolength", 0, "", "chunks"},
		{mine, "GET", "/hello", 200, "hello ", ""},
		{mine, "DELETE", "/hello", 405, "method not allowed\n", ""},
	} {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := Do(context.Background(), conn, c.method, "test", c.path, 1<<20)
		conn.Close()
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s %s: %v, want an error about %s", c.method, c.path, err, c.err)
			}
		case err != nil:
			t.Errorf("%s %s: %v", c.method, c.path, err)
		case resp.Status != c.status || string(resp.Body) != c.body:
			t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, resp.Status, resp.Body, c.status, c.body)
		}
	}
}

// Do refuses a body over its limit, announced or not.
func TestDoLimit(t *testing.T) {
	for _, answer := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
		"HTTP/1.1 200 OK\r\n\r\nhello world",
	} {
		client, server := net.Pipe()
		go func() {
			http.ReadRequest(bufio.NewReader(server))
			io.WriteString(server, answer)
			server.Close()
		}()
		if _, err := Do(context.Background(), client, "GET", "x", "/", 5); err == nil || !strings.Contains(err.Error(), "limit") {
			t.Errorf("%q: %v, want an error about the limit", answer, err)
		}
		client.Close()
	}
}

// Serve returns nil once its context ends, and has closed its listener.
func TestServeStops(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{Handler: testMux()}).Serve(ctx, ln) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("the listener still accepts after Serve returned")
	}
}

// failingListener fails its first accepts as a process out of file
// descriptors does.
type failingListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// Running out of file descriptors is waited out, not the end of serving.
func TestServeWaitsOutEMFILE(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &failingListener{Listener: ln}
	fl.fails.Store(3)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{Handler: testMux()}).Serve(ctx, fl) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	resp, err := http.Get("http://" + ln.Addr().String() + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || fl.fails.Load() >= 0 {
		t.Errorf("status %d, accepts left to fail %d", resp.StatusCode, fl.fails.Load())
	}
}

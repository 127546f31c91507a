// Package minhttp is the little HTTP/1.1 braid speaks: a server for its
// control socket and its metrics endpoint, and a client for the socket.
//
// The standard library's net/http would do both, and weighs 2.6 MiB in a
// stripped router binary (the HTTP/2 bundle, and a TLS server the server
// reaches through its *tls.Conn check) where these endpoints need a few
// kilobytes: one request per connection, a handful of fixed paths, small
// answers. So the server reads one request (request line and header, no
// body beyond a short Content-Length one), hands it to a Handler, and
// writes the whole response with its Content-Length and Connection: close;
// the client reads such a response. Anything else (chunked requests,
// pipelining, upgrades) is refused, not half-handled.
package minhttp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Limits of what the server reads.
const (
	// MaxHeaderBytes bounds a request's line and header together.
	MaxHeaderBytes = 16 << 10
	// MaxBodyBytes bounds a request's body, read and discarded.
	MaxBodyBytes = 64 << 10
)

// Request is a request as the server read it.
type Request struct {
	// Method is the request's method, as sent (GET, POST).
	Method string
	// Path is the target's path, without its query.
	Path string
	// Header holds the header fields, by canonical name.
	Header textproto.MIMEHeader
	ctx    context.Context
}

// Context is the request's context: the server's, as ConnContext made it
// for the connection, cancelled when the server stops.
func (r *Request) Context() context.Context { return r.ctx }

// ResponseWriter collects a handler's response; the server sends it when
// the handler returns.
type ResponseWriter struct {
	status int
	header textproto.MIMEHeader
	body   bytes.Buffer
}

// Header is the response's header, for the handler to set fields in.
// Content-Length and Connection are the server's.
func (w *ResponseWriter) Header() textproto.MIMEHeader { return w.header }

// WriteHeader sets the status code (200 unless called).
func (w *ResponseWriter) WriteHeader(status int) { w.status = status }

// Write appends to the response's body.
func (w *ResponseWriter) Write(p []byte) (int, error) { return w.body.Write(p) }

// Handler answers a request.
type Handler interface {
	ServeHTTP(w *ResponseWriter, r *Request)
}

// HandlerFunc is a function as a Handler.
type HandlerFunc func(w *ResponseWriter, r *Request)

// ServeHTTP calls f.
func (f HandlerFunc) ServeHTTP(w *ResponseWriter, r *Request) { f(w, r) }

// Error answers with status and a one-line plain-text message.
func Error(w *ResponseWriter, msg string, status int) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}

// ServeMux routes requests by exact method and path.
type ServeMux struct {
	routes map[string]Handler // "METHOD /path"
	paths  map[string]bool
}

// NewServeMux returns an empty mux.
func NewServeMux() *ServeMux {
	return &ServeMux{routes: map[string]Handler{}, paths: map[string]bool{}}
}

// Handle routes pattern, "METHOD /path", to h. A pattern without a space
// or registered twice is a programming error, and panics.
func (m *ServeMux) Handle(pattern string, h Handler) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok || method == "" || !strings.HasPrefix(path, "/") {
		panic("minhttp: pattern " + strconv.Quote(pattern) + " is not \"METHOD /path\"")
	}
	if m.routes[pattern] != nil {
		panic("minhttp: pattern " + strconv.Quote(pattern) + " registered twice")
	}
	m.routes[pattern] = h
	m.paths[path] = true
}

// ServeHTTP answers with the route's handler: 404 for a path without one,
// 405 for a path with routes for other methods only.
func (m *ServeMux) ServeHTTP(w *ResponseWriter, r *Request) {
	if h := m.routes[r.Method+" "+r.Path]; h != nil {
		h.ServeHTTP(w, r)
		return
	}
	if m.paths[r.Path] {
		Error(w, "method not allowed", 405)
		return
	}
	Error(w, "not found", 404)
}

// Server serves a Handler, one request per connection.
type Server struct {
	// Handler answers every request.
	Handler Handler
	// Timeout bounds each connection's life: reading the request,
	// handling it and writing the answer (default 10 s).
	Timeout time.Duration
	// ConnContext, when set, makes the context of a connection's request
	// from the server's.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
}

// Serve accepts connections on ln until ctx ends or ln fails, then closes
// ln and waits for the connections being answered. It returns nil when ctx
// ended it.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Out of file descriptors, or a connection gone before it was
			// accepted: wait a little and go on, as net/http does.
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(backoff):
					continue
				case <-ctx.Done():
					return nil
				}
			}
			ln.Close()
			return err
		}
		backoff = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, c)
		}()
	}
}

// serveConn reads one request from c, answers it and closes c.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	c.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if s.ConnContext != nil {
		ctx = s.ConnContext(ctx, c)
	}
	w := &ResponseWriter{status: 200, header: textproto.MIMEHeader{}}
	br := bufio.NewReaderSize(c, 4096)
	req, status, err := readRequest(br)
	if err != nil {
		if status == 0 {
			return // nothing came, or the peer went: nobody to answer
		}
		Error(w, err.Error(), status)
	} else {
		req.ctx = ctx
		s.Handler.ServeHTTP(w, req)
	}
	w.writeTo(c)
}

// readRequest reads a request's line, header and body. On an error, status
// is the code to answer with, 0 when there is nobody to answer.
func readRequest(br *bufio.Reader) (*Request, int, error) {
	lr := &io.LimitedReader{R: br, N: MaxHeaderBytes}
	tp := textproto.NewReader(bufio.NewReader(lr))
	line, err := tp.ReadLine()
	if err != nil {
		if lr.N <= 0 {
			return nil, 431, errors.New("request header too large")
		}
		return nil, 0, err
	}
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || method == "" || !strings.HasPrefix(target, "/") {
		return nil, 400, fmt.Errorf("malformed request line %q", line)
	}
	if proto != "HTTP/1.1" && proto != "HTTP/1.0" {
		return nil, 505, fmt.Errorf("%q is not HTTP/1.0 or HTTP/1.1", proto)
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		if lr.N <= 0 {
			return nil, 431, errors.New("request header too large")
		}
		return nil, 400, fmt.Errorf("malformed header: %w", err)
	}
	if h.Get("Transfer-Encoding") != "" {
		return nil, 501, errors.New("request bodies in chunks are not taken")
	}
	if cl := h.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 {
			return nil, 400, fmt.Errorf("malformed Content-Length %q", cl)
		}
		if n > MaxBodyBytes {
			return nil, 413, errors.New("request body too large")
		}
		// The header's reader may have buffered the body's start: read it
		// through the same readers, then past the header's limit.
		lr.N += n
		if _, err := io.CopyN(io.Discard, tp.R, n); err != nil {
			return nil, 400, fmt.Errorf("short body: %w", err)
		}
	}
	path, _, _ := strings.Cut(target, "?")
	return &Request{Method: method, Path: path, Header: h}, 0, nil
}

// writeTo sends the response, closing the connection after it.
func (w *ResponseWriter) writeTo(c io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", w.status, StatusText(w.status))
	for name, values := range w.header {
		if name == "Content-Length" || name == "Connection" {
			continue
		}
		for _, v := range values {
			fmt.Fprintf(&b, "%s: %s\r\n", name, strings.NewReplacer("\r", " ", "\n", " ").Replace(v))
		}
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\nConnection: close\r\n\r\n", w.body.Len())
	b.Write(w.body.Bytes())
	_, err := c.Write(b.Bytes())
	return err
}

// StatusText is the reason phrase of the codes braid answers with.
func StatusText(code int) string {
	switch code {
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 413:
		return "Content Too Large"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 505:
		return "HTTP Version Not Supported"
	}
	return "Status " + strconv.Itoa(code)
}

// Response is a response as the client read it.
type Response struct {
	// Status is the code; Reason the phrase after it.
	Status int
	Reason string
	// Header holds the header fields, by canonical name.
	Header textproto.MIMEHeader
	// Body is the whole body.
	Body []byte
}

// Do sends one request, without a body, on c and reads the response, its
// body at most maxBody bytes. host names the server in the Host field. It
// gives up when ctx ends.
func Do(ctx context.Context, c net.Conn, method, host, path string, maxBody int64) (*Response, error) {
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	req := method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return nil, ctxErr(ctx, err)
	}
	resp, err := readResponse(bufio.NewReader(c), maxBody)
	return resp, ctxErr(ctx, err)
}

func ctxErr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}

// readResponse reads a response: its status line, header, and a body of
// Content-Length bytes or, without one, up to the end of the connection.
func readResponse(br *bufio.Reader, maxBody int64) (*Response, error) {
	tp := textproto.NewReader(bufio.NewReader(&io.LimitedReader{R: br, N: MaxHeaderBytes}))
	line, err := tp.ReadLine()
	if err != nil {
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	proto, rest, _ := strings.Cut(line, " ")
	code, reason, _ := strings.Cut(rest, " ")
	status, err := strconv.Atoi(code)
	if !strings.HasPrefix(proto, "HTTP/1.") || err != nil || len(code) != 3 || status < 100 {
		return nil, fmt.Errorf("malformed status line %q", line)
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("malformed response header: %w", err)
	}
	if h.Get("Transfer-Encoding") != "" {
		return nil, errors.New("a response body in chunks: not braid's server")
	}
	// The header's reader may have buffered the body's start.
	body := io.MultiReader(tp.R, br)
	n := maxBody + 1
	if cl := h.Get("Content-Length"); cl != "" {
		l, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || l < 0 {
			return nil, fmt.Errorf("malformed Content-Length %q", cl)
		}
		if l > maxBody {
			return nil, fmt.Errorf("a response body of %d bytes, over the limit of %d", l, maxBody)
		}
		n = l
	}
	b, err := io.ReadAll(io.LimitReader(body, n))
	if err != nil {
		return nil, fmt.Errorf("reading the response body: %w", err)
	}
	if int64(len(b)) > maxBody {
		return nil, fmt.Errorf("a response body over the limit of %d bytes", maxBody)
	}
	if h.Get("Content-Length") != "" && int64(len(b)) != n {
		return nil, fmt.Errorf("a response body of %d bytes, %d announced", len(b), n)
	}
	return &Response{Status: status, Reason: reason, Header: h, Body: b}, nil
}

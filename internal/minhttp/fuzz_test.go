package minhttp

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// FuzzReadRequest: the metrics endpoint may listen where others reach it.
// A request of any bytes never panics; one read has a method and a path,
// and one refused says with which status.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n"))
	f.Add([]byte("POST /v1/confirm HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"))
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\n folded: x\r\n\r\n"))
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, status, err := readRequest(bufio.NewReader(bytes.NewReader(b)))
		switch {
		case err == nil:
			if r == nil || r.Method == "" || !strings.HasPrefix(r.Path, "/") || strings.Contains(r.Path, "?") || status != 0 {
				t.Fatalf("read %+v, status %d", r, status)
			}
		case status != 0 && strings.HasPrefix(StatusText(status), "Status "):
			t.Fatalf("refused with an unnamed status %d: %v", status, err)
		}
	})
}

// FuzzReadResponse: an answer of any bytes never panics, and a body read
// is never over the limit.
func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"))
	f.Add([]byte("HTTP/1.1 403 Forbidden\r\n\r\nno"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 64
		resp, err := readResponse(bufio.NewReader(bytes.NewReader(b)), limit)
		if err == nil && (len(resp.Body) > limit || resp.Status < 100 || resp.Status > 999) {
			t.Fatalf("read %d bytes, status %d", len(resp.Body), resp.Status)
		}
	})
}

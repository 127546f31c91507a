// Package control is the daemon's local API: HTTP with JSON over a Unix
// socket in the namespace's runtime directory, readable by root only. It
// speaks HTTP/1.1 through internal/minhttp, so `curl --unix-socket` reads
// it too.
package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/internal/minhttp"
)

// SocketName is the socket's name in the runtime directory.
const SocketName = "braid.sock"

// Paths of the API.
const (
	PathStatus = "/v1/status"
	PathFacts  = "/v1/facts"
	// PathBound lists the process-bound resources the daemon keeps.
	PathBound = "/v1/bound"
	// PathSessions lists the sessions the daemon runs, as the plan
	// compares them.
	PathSessions = "/v1/sessions"
	// PathConfirm (POST) confirms the revision on trial.
	PathConfirm = "/v1/confirm"
)

// Serve serves handler on the socket in dir until ctx ends. Only root may
// use it: the directory is made mode 0700 before the socket is created in
// it (so there is no moment when another user can reach it), the socket
// is mode 0600, and every connection's peer credentials are checked, so
// that a socket made reachable by mistake still answers nobody else.
// The socket is removed on return.
func Serve(ctx context.Context, dir string, handler minhttp.Handler) error {
	path := filepath.Join(dir, SocketName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	// A socket left by a crashed daemon: the namespace lock, held by the
	// caller, proves nobody serves it.
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	srv := &minhttp.Server{
		Handler: rootOnly(handler),
		Timeout: time.Minute,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, peerKey{}, peerUID(c))
		},
	}
	defer os.Remove(path)
	if err := srv.Serve(ctx, ln); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	return nil
}

// peerKey is the context key of a connection's peer user ID.
type peerKey struct{}

// peerUID returns the user ID of the process at the other end of a Unix
// socket connection (SO_PEERCRED), or -1 when it cannot be told.
func peerUID(c net.Conn) int {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1
	}
	uid := -1
	raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			uid = int(cred.Uid)
		}
	})
	return uid
}

// rootOnly refuses every request whose peer is not root.
func rootOnly(h minhttp.Handler) minhttp.Handler {
	return minhttp.HandlerFunc(func(w *minhttp.ResponseWriter, r *minhttp.Request) {
		if uid, _ := r.Context().Value(peerKey{}).(int); uid != 0 {
			minhttp.Error(w, "braid's control socket answers root only", 403)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// JSON is a handler that serves the value get returns as JSON.
func JSON(get func() any) minhttp.Handler {
	return minhttp.HandlerFunc(func(w *minhttp.ResponseWriter, r *minhttp.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(get())
	})
}

// ErrNoDaemon is returned by the client when no daemon serves the socket.
var ErrNoDaemon = errors.New("no braid daemon is running in this namespace")

// Client talks to a daemon's socket.
type Client struct {
	dir string
}

// NewClient returns a client for the socket in dir.
func NewClient(dir string) *Client {
	return &Client{dir: dir}
}

// maxAnswer bounds a daemon's answer.
const maxAnswer = 64 << 20

// Get fetches path and decodes its JSON into v. It returns ErrNoDaemon
// when nothing listens on the socket.
func (c *Client) Get(ctx context.Context, path string, v any) error {
	return c.do(ctx, "GET", path, v)
}

// Post calls path and decodes the JSON answer into v (if not nil).
func (c *Client) Post(ctx context.Context, path string, v any) error {
	return c.do(ctx, "POST", path, v)
}

func (c *Client) do(ctx context.Context, method, path string, v any) error {
	// No socket, no daemon: said without starting an HTTP client, which
	// is most of what a CLI run spends here when no daemon runs.
	if _, err := os.Lstat(filepath.Join(c.dir, SocketName)); errors.Is(err, fs.ErrNotExist) {
		return ErrNoDaemon
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", filepath.Join(c.dir, SocketName))
	var resp *minhttp.Response
	if err == nil {
		resp, err = minhttp.Do(ctx, conn, method, "braid", path, maxAnswer)
		conn.Close()
	}
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ECONNREFUSED):
		return ErrNoDaemon
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("braid's control socket %s answers root only: %w", filepath.Join(c.dir, SocketName), err)
	default:
		return fmt.Errorf("daemon %s: %w", path, err)
	}
	if resp.Status != 200 {
		b := resp.Body
		if len(b) > 4096 {
			b = b[:4096]
		}
		return fmt.Errorf("daemon %s: %d %s: %s", path, resp.Status, resp.Reason, bytes.TrimSpace(b))
	}
	if v == nil {
		return nil
	}
	return c.decode(path, bytes.NewReader(resp.Body), v)
}

// decode reads a daemon's JSON answer into v.
func (c *Client) decode(path string, r io.Reader, v any) error {
	if err := json.NewDecoder(r).Decode(v); err != nil {
		return fmt.Errorf("daemon %s: %w", path, err)
	}
	return nil
}

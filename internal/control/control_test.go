package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/minhttp"
	"github.com/braid-router/braid/internal/nstest"
)

// clientEnv makes the test binary act as a client of the socket in the
// directory it names (run as another user by the tests).
const clientEnv = "BRAID_CONTROL_TEST_CLIENT"

func TestMain(m *testing.M) {
	if dir := os.Getenv(clientEnv); dir != "" {
		var answer map[string]string
		err := NewClient(dir).Post(context.Background(), PathConfirm, &answer)
		fmt.Print(err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serve runs Serve on a fresh directory with a confirm handler that
// counts its calls.
func serve(t *testing.T) (dir string, confirms *atomic.Int32) {
	t.Helper()
	// Under a directory others may enter, so that only the socket's own
	// directory and mode keep them out.
	base, err := os.MkdirTemp("", "braid-control-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o755)
	t.Cleanup(func() { os.RemoveAll(base) })
	dir = filepath.Join(base, "run")
	confirms = &atomic.Int32{}
	mux := minhttp.NewServeMux()
	mux.Handle("POST "+PathConfirm, JSON(func() any { confirms.Add(1); return map[string]string{"revision": "r1"} }))
	mux.Handle("GET "+PathStatus, JSON(func() any { return map[string]string{"ok": "yes"} }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, dir, mux) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, SocketName)); err == nil {
			return dir, confirms
		}
		if time.Now().After(deadline) {
			t.Fatal("the socket never appeared")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// asNobody runs the test binary as user nobody, as a client of the socket
// in dir, and returns what it printed (its error).
func asNobody(t *testing.T, dir string) string {
	t.Helper()
	exe := nobodyCopy(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), clientEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as nobody: %v\n%s", err, out)
	}
	return string(out)
}

// nobodyCopy copies the test binary where user nobody can run it (the go
// tool builds it in a directory only root may enter).
func nobodyCopy(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "braid-control-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "control.test")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return exe
}

// The control socket answers root only: its directory and the socket are
// closed to others, and a socket opened to others by mistake still
// refuses them, confirm included (a permissive socket would let any local
// user confirm a trial).
func TestSocketIsRootOnly(t *testing.T) {
	nstest.RequireRoot(t)
	dir, confirms := serve(t)
	// Root is answered (and once it is, the socket is set up in full).
	var st map[string]string
	if err := NewClient(dir).Get(context.Background(), PathStatus, &st); err != nil || st["ok"] != "yes" {
		t.Fatalf("root's request: %v %v", st, err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, SocketName): 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), want)
		}
	}
	if got := asNobody(t, dir); !strings.Contains(got, "answers root only") || !strings.Contains(got, "permission denied") {
		t.Errorf("another user through the closed directory: %q", got)
	}
	// Opened by mistake: the peer check still refuses.
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Join(dir, SocketName), 0o666)
	if got := asNobody(t, dir); !strings.Contains(got, "403") || !strings.Contains(got, "answers root only") {
		t.Errorf("another user through an open socket: %q", got)
	}
	if n := confirms.Load(); n != 0 {
		t.Errorf("another user's confirm reached the daemon %d time(s)", n)
	}
}

// FuzzDecode: what a daemon answers is decoded by the CLI into its
// documents. Decoding arbitrary bytes never panics and errors name the
// path.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"revision": "r1"}`))
	f.Add([]byte(`{"source": "file x", "lastPass": {"start": "2026-12-05T00:00:00Z"}, "objects": []}`))
	f.Add([]byte(`[{"address": "session[dhcp4/a]", "fields": [{"name": "x", "value": "y", "secret": true}]}]`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := NewClient(t.TempDir())
		var anything any
		err := c.decode(PathStatus, strings.NewReader(string(b)), &anything)
		if err != nil && !strings.Contains(err.Error(), PathStatus) {
			t.Fatalf("error does not name the path: %v", err)
		}
		if err == nil {
			if _, err := json.Marshal(anything); err != nil {
				t.Fatalf("decoded a value that does not encode: %v", err)
			}
		}
	})
}

func TestNoDaemon(t *testing.T) {
	dir := t.TempDir()
	var v any
	// No socket at all.
	if err := NewClient(dir).Get(context.Background(), PathStatus, &v); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("no socket: %v, want ErrNoDaemon", err)
	}
	// A socket left by a daemon that is gone: nobody listens.
	ln, err := net.Listen("unix", filepath.Join(dir, SocketName))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(filepath.Join(dir, SocketName)); err != nil {
		t.Fatal(err)
	}
	if err := NewClient(dir).Get(context.Background(), PathStatus, &v); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("stale socket: %v, want ErrNoDaemon", err)
	}
}

func TestServeAndGet(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, dir, JSON(func() any { return map[string]int{"passes": 3} })) }()
	var got map[string]int
	deadline := time.Now().Add(time.Minute)
	for {
		err := NewClient(dir).Get(context.Background(), PathStatus, &got)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrNoDaemon) || time.Now().After(deadline) {
			t.Fatalf("get: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got["passes"] != 3 {
		t.Errorf("got %v", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, SocketName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after Serve returned: %v", err)
	}
}

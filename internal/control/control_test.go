package control

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

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
	deadline := time.Now().Add(5 * time.Second)
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

package nstest

import (
	"bytes"
	"os/exec"
	"sync"
	"testing"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writers (a process, a
// logger in a background goroutine) and a reading test.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// Len is the number of bytes written so far.
func (s *SyncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// String is everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Watch starts a long-running command (a monitor such as `ip monitor all`
// or `nft monitor`) with its stdout and stderr collected in the returned
// buffer, and kills and reaps it when the test ends.
func Watch(t testing.TB, name string, args ...string) *SyncBuffer {
	t.Helper()
	out := &SyncBuffer{}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return out
}

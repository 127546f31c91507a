// Package rundir locates braid's runtime and state directories for a
// network namespace and holds the per-namespace lock that keeps two braid
// processes from writing at once.
package rundir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Default roots; BRAID_RUN_DIR and BRAID_STATE_DIR override them (tests).
const (
	RunRoot   = "/run/braid"
	StateRoot = "/var/lib/braid"
)

// Dirs are one namespace's directories.
type Dirs struct {
	// Namespace is braid's name for the network namespace.
	Namespace string
	// Run holds the control socket and the lock.
	Run string
	// State holds the ownership record, facts and the last good spec.
	State string
}

// For returns the directories of the named namespace, honouring
// BRAID_RUN_DIR and BRAID_STATE_DIR.
func For(namespace string) Dirs {
	run, state := RunRoot, StateRoot
	if v := os.Getenv("BRAID_RUN_DIR"); v != "" {
		run = v
	}
	if v := os.Getenv("BRAID_STATE_DIR"); v != "" {
		state = v
	}
	return Dirs{Namespace: namespace, Run: filepath.Join(run, namespace), State: filepath.Join(state, namespace)}
}

// Lock is a held per-namespace lock.
type Lock struct {
	f *os.File
}

// ErrLocked is returned when another process holds the lock.
var ErrLocked = errors.New("locked")

// TryLock takes the namespace's lock without waiting. When another braid
// process holds it, the error names that process.
func (d Dirs) TryLock() (*Lock, error) {
	if err := os.MkdirAll(d.Run, 0o700); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	path := filepath.Join(d.Run, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		holder := strings.TrimSpace(string(b))
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another braid process (pid %s) is changing namespace %s (%s): %w", holder, d.Namespace, path, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &Lock{f: f}, nil
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

package reconcile

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/source"
)

// Test doubles shared with the external tests (package reconcile_test),
// which compile real specs with package compile (which imports this one).

// MemSource is a spec source in memory.
type MemSource struct {
	mu      sync.Mutex
	Data    string
	changed func()
	loads   int
}

func (m *MemSource) String() string { return "memory" }
func (m *MemSource) Load(context.Context) (source.Revision, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loads++
	return source.Revision{Name: "mem.yaml", Data: []byte(m.Data)}, nil
}
func (m *MemSource) Watch(ctx context.Context, changed func()) error {
	m.mu.Lock()
	m.changed = changed
	m.mu.Unlock()
	<-ctx.Done()
	return nil
}
func (m *MemSource) Set(data string) {
	m.mu.Lock()
	m.Data = data
	f := m.changed
	m.mu.Unlock()
	if f != nil {
		f()
	}
}

// Loads counts the reads of the source.
func (m *MemSource) Loads() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.loads
}

// NewMemSource returns a source holding data.
func NewMemSource(data string) *MemSource { return &MemSource{Data: data} }

// SetQuietly changes the content without telling the watcher.
func (m *MemSource) SetQuietly(data string) {
	m.mu.Lock()
	m.Data = data
	m.mu.Unlock()
}

// WaitFor polls cond until it holds, failing the test after 30 seconds
// (generous: the suite runs on a busy machine).
func WaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// LockedDriver owns every resource and is safe for the daemon's goroutine
// and the test's: the daemon's logic is tested here; the kernel drivers have
// their own tests.
type LockedDriver struct {
	mu  sync.Mutex
	mem *memDriver
}

func (l *LockedDriver) Name() string            { return "mem" }
func (l *LockedDriver) Owns(plan.Resource) bool { return true }
func (l *LockedDriver) Observe(ctx context.Context, d []plan.Resource) ([]plan.Observed, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mem.Observe(ctx, d)
}
func (l *LockedDriver) Apply(ctx context.Context, c plan.Change) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mem.Apply(ctx, c)
}
func (l *LockedDriver) Writes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(*l.mem.log)
}

// Drift removes one live object, as someone's `ip route del` would.
func (l *LockedDriver) Drift() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.mem.live {
		delete(l.mem.live, k)
		return
	}
}

// NewLockedDriver returns an empty fake kernel.
func NewLockedDriver() *LockedDriver {
	var log []string
	return &LockedDriver{mem: newMem("any", &log)}
}

// Refuse makes the fake kernel refuse writes to addr ("" accepts all).
func (l *LockedDriver) Refuse(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mem.refuse = addr
}

// Wipe empties the fake kernel, as a reboot would.
func (l *LockedDriver) Wipe() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mem.live = map[string]plan.Resource{}
}

// Has reports whether the fake kernel holds an object.
func (l *LockedDriver) Has(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.mem.live[addr]
	return ok
}

// FailingSource fails its loads while broken is set.
type FailingSource struct {
	MemSource
	mu2    sync.Mutex
	broken bool
}

func (f *FailingSource) Load(ctx context.Context) (source.Revision, error) {
	f.mu2.Lock()
	broken := f.broken
	f.mu2.Unlock()
	if broken {
		return source.Revision{}, errors.New("repository not found")
	}
	return f.MemSource.Load(ctx)
}

func (f *FailingSource) SetBroken(b bool) {
	f.mu2.Lock()
	f.broken = b
	f.mu2.Unlock()
}

// Item is a resource of the fake kernel: any kind, name and value.
func Item(kind, name, value string) plan.Resource { return item{kind, name, value} }

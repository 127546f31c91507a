// Package record is braid's write-ahead ownership record: what braid changed
// on the host that the kernel cannot mark as braid's (addresses it added, the
// previous values of sysctls, links' previous admin state, MTU and MAC
// address). An entry is written, synced and renamed into place before the
// kernel write it describes, so that after a crash braid still knows what
// it owns and `destroy` can put the host back as it found it.
package record

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/braid-router/braid/internal/atomicfile"
)

// FileName is the record's name inside the state directory.
const FileName = "owned.json"

// Record is the ownership record of one network namespace. Entries are
// grouped by kind ("address", "sysctl", "link", ...) and keyed by a driver's
// own key. It is safe for concurrent use.
type Record struct {
	path string

	mu   sync.Mutex
	data map[string]map[string]json.RawMessage
}

// Open loads the record in dir, or starts an empty one if there is none. The
// directory is created when the first entry is written.
func Open(dir string) (*Record, error) {
	r := &Record{path: filepath.Join(dir, FileName), data: map[string]map[string]json.RawMessage{}}
	b, err := os.ReadFile(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read ownership record: %w", err)
	}
	if err := json.Unmarshal(b, &r.data); err != nil {
		return nil, &CorruptError{Path: r.path, Err: err}
	}
	if r.data == nil {
		r.data = map[string]map[string]json.RawMessage{}
	}
	return r, nil
}

// CorruptError is a record that cannot be read: braid cannot tell what it
// owns, so it refuses to change anything until a person decides.
type CorruptError struct {
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("the ownership record %s is corrupt (%v): braid cannot tell which addresses, sysctls, "+
		"link settings and MPTCP endpoints it changed, so it changes nothing. Restore the file from a backup, "+
		"or move it aside (mv %s %s.corrupt): braid then treats what that record listed as foreign and leaves it "+
		"alone (its routes, rules and nftables table it still finds by their marks), and `braid destroy` "+
		"cannot restore the values it recorded", e.Path, e.Err, e.Path, e.Path)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// Memory returns a record that is never persisted, for tests and dry runs.
func Memory() *Record {
	return &Record{data: map[string]map[string]json.RawMessage{}}
}

// Get decodes the entry kind/key into v and reports whether it exists.
func (r *Record) Get(kind, key string, v any) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	raw, ok := r.data[kind][key]
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("ownership record %s %q: %w", kind, key, err)
	}
	return true, nil
}

// Has reports whether kind/key is recorded.
func (r *Record) Has(kind, key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.data[kind][key]
	return ok
}

// Keys lists the keys recorded for kind, sorted.
func (r *Record) Keys(kind string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]string, 0, len(r.data[kind]))
	for k := range r.data[kind] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Put records v under kind/key and persists the record before returning.
func (r *Record) Put(kind, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("record %s %q: %w", kind, key, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.data[kind] == nil {
		r.data[kind] = map[string]json.RawMessage{}
	}
	r.data[kind][key] = raw
	return r.save()
}

// PutIfAbsent records v under kind/key unless an entry exists (the first
// previous value is the one to restore) and persists the record.
func (r *Record) PutIfAbsent(kind, key string, v any) error {
	if r.Has(kind, key) {
		return nil
	}
	return r.Put(kind, key, v)
}

// Delete forgets kind/key and persists the record.
func (r *Record) Delete(kind, key string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.data[kind][key]; !ok {
		return nil
	}
	delete(r.data[kind], key)
	if len(r.data[kind]) == 0 {
		delete(r.data, kind)
	}
	return r.save()
}

// Empty reports whether nothing is recorded.
func (r *Record) Empty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.data) == 0
}

// save writes the record durably (internal/atomicfile).
func (r *Record) save() error {
	if r.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(r.data, "", "  ")
	if err != nil {
		return fmt.Errorf("encode ownership record: %w", err)
	}
	if err := atomicfile.Write(r.path, b, 0o600); err != nil {
		return fmt.Errorf("ownership record: %w", err)
	}
	return nil
}

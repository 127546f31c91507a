// Package record is braid's write-ahead ownership record: what braid changed
// on the host that the kernel cannot mark as braid's (addresses it added, the
// previous values of sysctls, links' previous admin state, MTU and MAC
// address). An entry is written, synced and renamed into place before the
// kernel write it describes, so that after a crash braid still knows what
// it owns and `destroy` can put the host back as it found it.
//
// Every write is one synced replacement of the whole file, so a driver
// applying a batch of changes writes the entries of the whole batch at once
// (PutAll) before its first kernel write, and holds back the removals that
// follow its deletes (HoldDeletes) until the batch is done: two writes for
// the batch instead of one per change. Batch does both for a driver.
package record

import (
	"bytes"
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
//
// Every entry the record holds in memory is on disk too: a Put whose write
// fails is undone. Only removals may be in memory alone, while deletes are
// held (HoldDeletes) or after a failed write; the next write persists them.
type Record struct {
	path string

	mu   sync.Mutex
	data map[string]map[string]json.RawMessage
	// held counts the HoldDeletes in force; dirty says that the memory
	// has removals the file does not.
	held  int
	dirty bool
	// saves counts the writes (see Writes).
	saves int
	// batches are the batches running (see Batch); replaced, never
	// changed in place.
	batches []*Batch
}

// Entry is one entry for PutAll.
type Entry struct {
	Kind, Key string
	Value     any
	// IfAbsent keeps an existing entry, as PutIfAbsent does.
	IfAbsent bool
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
	// As Put stores them, so that an equal Put is known to be on disk.
	for _, entries := range r.data {
		for k, raw := range entries {
			var b bytes.Buffer
			if err := json.Compact(&b, raw); err == nil {
				entries[k] = b.Bytes()
			}
		}
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
// An equal entry already recorded is already on disk: nothing is written.
func (r *Record) Put(kind, key string, v any) error {
	return r.PutAll([]Entry{{Kind: kind, Key: key, Value: v}})
}

// PutIfAbsent records v under kind/key unless an entry exists (the first
// previous value is the one to restore) and persists the record.
func (r *Record) PutIfAbsent(kind, key string, v any) error {
	return r.PutAll([]Entry{{Kind: kind, Key: key, Value: v, IfAbsent: true}})
}

// PutAll records the entries, in order, and persists the record once
// before returning: the write-ahead of a whole batch of kernel writes. If
// every entry is already recorded as given (or, with IfAbsent, at all),
// nothing is written. If the write fails, the record is left as it was.
func (r *Record) PutAll(entries []Entry) error {
	raws := make([]json.RawMessage, len(entries))
	for i, e := range entries {
		raw, err := json.Marshal(e.Value)
		if err != nil {
			return fmt.Errorf("record %s %q: %w", e.Kind, e.Key, err)
		}
		raws[i] = raw
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	type undo struct {
		kind, key string
		raw       json.RawMessage
		had       bool
	}
	var undos []undo
	for i, e := range entries {
		old, had := r.data[e.Kind][e.Key]
		if had && (e.IfAbsent || bytes.Equal(old, raws[i])) {
			continue
		}
		undos = append(undos, undo{e.Kind, e.Key, old, had})
		if r.data[e.Kind] == nil {
			r.data[e.Kind] = map[string]json.RawMessage{}
		}
		r.data[e.Kind][e.Key] = raws[i]
	}
	if len(undos) == 0 {
		return nil
	}
	if err := r.save(); err != nil {
		for i := len(undos) - 1; i >= 0; i-- {
			u := undos[i]
			if u.had {
				r.data[u.kind][u.key] = u.raw
			} else {
				r.remove(u.kind, u.key)
			}
		}
		return err
	}
	return nil
}

// Delete forgets kind/key and persists the record, unless deletes are held
// (HoldDeletes): then the removal is persisted by the next write.
func (r *Record) Delete(kind, key string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.data[kind][key]; !ok {
		return nil
	}
	r.remove(kind, key)
	r.dirty = true
	if r.held > 0 {
		return nil
	}
	return r.save()
}

// HoldDeletes makes Delete forget entries in memory only until release is
// called, which persists what was forgotten meanwhile (if no other write
// has) in one write. A driver holds deletes for a batch of changes: the
// removal of an entry may reach the disk after the kernel write it
// follows, which is safe, since an entry for what is gone from the kernel
// is stale, and the next pass forgets it (or restores a value that is
// already so), whereas an entry must never be missing for what braid
// changed. Entries written meanwhile (Put, PutAll) are persisted at once,
// with the removals so far. Holds nest: the last release writes.
func (r *Record) HoldDeletes() (release func() error) {
	r.mu.Lock()
	r.held++
	r.mu.Unlock()
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.held--
			if r.held == 0 && r.dirty {
				err = r.save()
			}
		})
		return err
	}
}

// remove forgets kind/key in memory.
func (r *Record) remove(kind, key string) {
	delete(r.data[kind], key)
	if len(r.data[kind]) == 0 {
		delete(r.data, kind)
	}
}

// Empty reports whether nothing is recorded.
func (r *Record) Empty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.data) == 0
}

// Writes returns how many times the record was written (for a memory
// record, would have been): what a batch costs, for tests.
func (r *Record) Writes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.saves
}

// save writes the record durably (internal/atomicfile).
func (r *Record) save() error {
	r.saves++
	if r.path == "" {
		r.dirty = false
		return nil
	}
	b, err := json.MarshalIndent(r.data, "", "  ")
	if err != nil {
		return fmt.Errorf("encode ownership record: %w", err)
	}
	if err := atomicfile.Write(r.path, b, 0o600); err != nil {
		return fmt.Errorf("ownership record: %w", err)
	}
	r.dirty = false
	return nil
}

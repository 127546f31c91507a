package record

import (
	"os"
	"path/filepath"
	"testing"
)

type prev struct {
	Up  bool `json:"up"`
	MTU int  `json:"mtu"`
}

func TestPersistsBeforeReturning(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Empty() {
		t.Fatal("a new record is not empty")
	}
	if err := r.Put("link", "wan1", prev{Up: false, MTU: 1500}); err != nil {
		t.Fatal(err)
	}
	// First value wins: the state before braid's first change is the one
	// to restore.
	if err := r.PutIfAbsent("link", "wan1", prev{Up: true, MTU: 9000}); err != nil {
		t.Fatal(err)
	}
	if err := r.Put("sysctl", "net.ipv4.ip_forward", "0"); err != nil {
		t.Fatal(err)
	}
	// Another process (a crash and restart) sees it.
	again, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var p prev
	if ok, err := again.Get("link", "wan1", &p); !ok || err != nil || p != (prev{Up: false, MTU: 1500}) {
		t.Fatalf("Get = %v %v %+v", ok, err, p)
	}
	if keys := again.Keys("sysctl"); len(keys) != 1 || keys[0] != "net.ipv4.ip_forward" {
		t.Fatalf("Keys = %v", keys)
	}
	if err := again.Delete("link", "wan1"); err != nil {
		t.Fatal(err)
	}
	if err := again.Delete("link", "wan1"); err != nil {
		t.Fatal("deleting twice is not an error:", err)
	}
	third, _ := Open(dir)
	if third.Has("link", "wan1") || !third.Has("sysctl", "net.ipv4.ip_forward") {
		t.Fatal("delete did not persist")
	}
	if info, err := os.Stat(filepath.Join(dir, FileName)); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("record file: %v %v", info, err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName+".tmp")); !os.IsNotExist(err) {
		t.Fatal("temporary file left behind")
	}
}

func TestCorruptRecordIsAnError(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, FileName), []byte("{not json"), 0o600)
	if _, err := Open(dir); err == nil {
		t.Fatal("a corrupt record must not be read as empty: braid would forget what it owns")
	}
}

func TestMemory(t *testing.T) {
	r := Memory()
	if err := r.Put("a", "b", 1); err != nil {
		t.Fatal(err)
	}
	var v int
	if ok, _ := r.Get("a", "b", &v); !ok || v != 1 {
		t.Fatal("memory record lost an entry")
	}
}

func TestPutAllWritesOnce(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Put("sysctl", "net.ipv4.ip_forward", "0"); err != nil {
		t.Fatal(err)
	}
	err = r.PutAll([]Entry{
		{Kind: "address", Key: "wan1 10.0.0.2/24", Value: struct{}{}},
		{Kind: "address", Key: "wan2 10.0.1.2/24", Value: struct{}{}},
		// Kept: the first previous value is the one to restore.
		{Kind: "sysctl", Key: "net.ipv4.ip_forward", Value: "1", IfAbsent: true},
		{Kind: "link", Key: "wan1", Value: prev{MTU: 1500}, IfAbsent: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := r.Writes(); n != 2 {
		t.Fatalf("%d writes, want 2: one Put, one PutAll", n)
	}
	again, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var v string
	if ok, _ := again.Get("sysctl", "net.ipv4.ip_forward", &v); !ok || v != "0" {
		t.Fatalf("sysctl entry %q, want the first value 0", v)
	}
	if !again.Has("address", "wan2 10.0.1.2/24") || !again.Has("link", "wan1") {
		t.Fatal("the batch did not reach the disk")
	}
	// What is recorded as given is on disk already, also after a restart.
	err = again.PutAll([]Entry{
		{Kind: "address", Key: "wan1 10.0.0.2/24", Value: struct{}{}},
		{Kind: "link", Key: "wan1", Value: prev{MTU: 1500}},
		{Kind: "sysctl", Key: "net.ipv4.ip_forward", Value: "1", IfAbsent: true},
	})
	if err != nil || again.Writes() != 0 {
		t.Fatalf("%d writes (%v) for entries already recorded", again.Writes(), err)
	}
	if err := again.Put("link", "wan1", prev{MTU: 9000}); err != nil || again.Writes() != 1 {
		t.Fatalf("%d writes (%v) for a changed entry", again.Writes(), err)
	}
}

func TestFailedWriteLeavesTheRecordAsItWas(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Put("link", "wan1", prev{MTU: 1500}); err != nil {
		t.Fatal(err)
	}
	// A directory where the file goes: the rename fails.
	path := filepath.Join(dir, FileName)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	err = r.PutAll([]Entry{
		{Kind: "link", Key: "wan1", Value: prev{MTU: 9000}},
		{Kind: "address", Key: "wan1 10.0.0.2/24", Value: struct{}{}},
	})
	if err == nil {
		t.Fatal("the write did not fail")
	}
	var p prev
	if ok, _ := r.Get("link", "wan1", &p); !ok || p.MTU != 1500 || r.Has("address", "wan1 10.0.0.2/24") {
		t.Fatalf("a failed write left entries in memory that are not on disk: %+v %v", p, r.Keys("address"))
	}
	// Had the failed entry stayed in memory, this would not write at all.
	os.Remove(path)
	if err := r.Put("address", "wan1 10.0.0.2/24", struct{}{}); err != nil {
		t.Fatal(err)
	}
	if again, _ := Open(dir); !again.Has("address", "wan1 10.0.0.2/24") {
		t.Fatal("the entry written after the failure is not on disk")
	}
}

func TestHoldDeletes(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	err = r.PutAll([]Entry{
		{Kind: "address", Key: "a", Value: struct{}{}},
		{Kind: "address", Key: "b", Value: struct{}{}},
		{Kind: "address", Key: "c", Value: struct{}{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	release := r.HoldDeletes()
	inner := r.HoldDeletes()
	for _, k := range []string{"a", "b"} {
		if err := r.Delete("address", k); err != nil {
			t.Fatal(err)
		}
	}
	if r.Has("address", "a") {
		t.Fatal("a held delete is not seen in memory")
	}
	if again, _ := Open(dir); !again.Has("address", "a") || r.Writes() != 1 {
		t.Fatalf("a held delete was written (%d writes)", r.Writes())
	}
	if err := inner(); err != nil || r.Writes() != 1 {
		t.Fatalf("an inner release wrote (%d writes, %v)", r.Writes(), err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := release(); err != nil || r.Writes() != 2 {
		t.Fatalf("%d writes (%v), want one more for the held deletes, once", r.Writes(), err)
	}
	again, _ := Open(dir)
	if again.Has("address", "a") || again.Has("address", "b") || !again.Has("address", "c") {
		t.Fatalf("after the release: %v", again.Keys("address"))
	}
	// Nothing deleted meanwhile: nothing to write.
	r.HoldDeletes()()
	if r.Writes() != 2 {
		t.Fatal("a release with nothing held wrote")
	}
	// A Put meanwhile persists the removals so far with its entry.
	release = r.HoldDeletes()
	r.Delete("address", "c")
	r.Put("link", "wan1", prev{MTU: 1500})
	if again, _ := Open(dir); again.Has("address", "c") || !again.Has("link", "wan1") {
		t.Fatal("a write during a hold did not persist the removal with the entry")
	}
	if err := release(); err != nil || r.Writes() != 3 {
		t.Fatalf("%d writes (%v), want 3: the release had nothing left to write", r.Writes(), err)
	}
}

// A batch writes the entries of its changes at once, tells those it added
// from those recorded before it, and at its end forgets, with its held
// deletes, those of the changes it did not attempt: one more write.
func TestBatch(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Put("address", "old", struct{}{}); err != nil {
		t.Fatal(err)
	}
	b := r.Batch()
	b.Add(0, Entry{Kind: "address", Key: "old", Value: struct{}{}})
	b.Add(1, Entry{Kind: "address", Key: "a", Value: struct{}{}})
	b.Add(2, Entry{Kind: "link", Key: "wan1", Value: prev{MTU: 1500}, IfAbsent: true})
	b.Add(3, Entry{Kind: "address", Key: "a", Value: struct{}{}}) // the first change wins
	b.Add(4, Entry{Kind: "address", Key: "b", Value: struct{}{}})
	if err := b.WriteAhead(); err != nil {
		t.Fatal(err)
	}
	if n := r.Writes(); n != 2 {
		t.Fatalf("%d writes, want 2: the Put, and the batch's entries at once", n)
	}
	if again, _ := Open(dir); !again.Has("address", "b") || !again.Has("link", "wan1") {
		t.Fatalf("the entries written ahead are not on disk: %v", again.Keys("address"))
	}
	for key, want := range map[string]bool{"old": false, "a": true, "b": true} {
		if got := r.WroteAhead("address", key); got != want {
			t.Errorf("WroteAhead(%s) = %v, want %v", key, got, want)
		}
	}
	// Change 2 failed: the entries of changes 3 and 4 go, those of 0 to 2
	// stay (2's is its Apply's to clean up), with a delete held meanwhile.
	if err := r.Delete("address", "old"); err != nil {
		t.Fatal(err)
	}
	if err := b.End(3); err != nil {
		t.Fatal(err)
	}
	if n := r.Writes(); n != 3 {
		t.Fatalf("%d writes, want 3: one more for the removals", n)
	}
	again, _ := Open(dir)
	if got := again.Keys("address"); len(got) != 1 || got[0] != "a" || !again.Has("link", "wan1") {
		t.Fatalf("after the batch: addresses %q, link %v", got, again.Has("link", "wan1"))
	}
	if r.WroteAhead("address", "a") {
		t.Error("an ended batch still reports its entries")
	}
}

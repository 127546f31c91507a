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

package rundir

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestForHonoursOverrides(t *testing.T) {
	t.Setenv("BRAID_RUN_DIR", "")
	t.Setenv("BRAID_STATE_DIR", "")
	d := For("braid-box")
	if d.Run != "/run/braid/braid-box" || d.State != "/var/lib/braid/braid-box" {
		t.Errorf("default dirs %+v", d)
	}
	t.Setenv("BRAID_RUN_DIR", "/tmp/r")
	t.Setenv("BRAID_STATE_DIR", "/tmp/s")
	if d := For("host"); d.Run != "/tmp/r/host" || d.State != "/tmp/s/host" {
		t.Errorf("overridden dirs %+v", d)
	}
}

func TestLockIsExclusive(t *testing.T) {
	root := t.TempDir()
	t.Setenv("BRAID_RUN_DIR", root)
	d := For("x")
	l1, err := d.TryLock()
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.TryLock()
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "another braid process") || !strings.Contains(err.Error(), filepath.Join(root, "x", "lock")) {
		t.Fatalf("second lock: %v", err)
	}
	l1.Unlock()
	l2, err := d.TryLock()
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	l2.Unlock()
}

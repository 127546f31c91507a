package netns

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (CI=true: not skipping)")
		}
		t.Skip("needs root")
	}
}

func TestCurrentNames(t *testing.T) {
	requireRoot(t)
	name := fmt.Sprintf("bt-name-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", name).Run()
	var got string
	if err := Do(name, func() (err error) { got, err = Current(); return }); err != nil {
		t.Fatal(err)
	}
	if got != name {
		t.Errorf("Current in %s = %q", name, got)
	}
	// An unnamed namespace is ns-<inode>.
	var unnamed string
	err := Do(name, func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return err
		}
		var err error
		unnamed, err = Current()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(unnamed, "ns-") {
		t.Errorf("unnamed namespace is %q, want ns-<inode>", unnamed)
	}
	if err := Enter("bt-does-not-exist"); err == nil || !strings.Contains(err.Error(), "bt-does-not-exist") {
		t.Errorf("Enter of a missing namespace: %v", err)
	}
}

// TestCurrentHost: the initial namespace is "host", also for a process
// that may not look at PID 1's namespace (this test's, in some sandboxes;
// braid's under its systemd unit, which packaging tests).
func TestCurrentHost(t *testing.T) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil || st.Ino != InitInode {
		t.Skipf("not in the initial network namespace of Linux 6.18 or later (inode %d, %v)", st.Ino, err)
	}
	if got, err := Current(); err != nil || got != "host" {
		t.Errorf("Current() = %q, %v; want host", got, err)
	}
}

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
)

// waitReverted waits until the pending confirmation has been dealt with (the
// reverter removes the file when it reverts).
func (b *box) waitReverted(t *testing.T, within time.Duration) {
	t.Helper()
	path := filepath.Join(b.stateDir, b.ns, pendingFile)
	deadline := time.Now().Add(within)
	for {
		if _, err := os.Stat(path); os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(b.stateDir, b.ns, revertLog))
			t.Fatalf("not reverted within %s; reverter log:\n%s", within, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pendingNow reads the pending confirmation, failing the test if there is
// none.
func (b *box) pendingNow(t *testing.T) *pending {
	t.Helper()
	p, err := readPending(filepath.Join(b.stateDir, b.ns))
	if err != nil || p == nil {
		t.Fatalf("no pending confirmation: %v", err)
	}
	return p
}

// waitGone waits until process pid has exited (a zombie counts as gone:
// the reverter's parent is whoever adopted it).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs after 60s", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestApplyConfirmRevertsEvenWhenTheShellDies(t *testing.T) {
	b := newBox(t)
	pristine := b.snapshot()
	b.must(0, "apply", "-f", writeSpec(t, labSpec))
	good := b.snapshot()
	changed := writeSpec(t, strings.Replace(strings.Replace(labSpec, "10.101.0.2/24", "10.101.0.3/24", 1), "priority: 20", "priority: 30", 1))

	// The apply runs in a shell that is killed right after, as a dropped
	// SSH session would be.
	shell := exec.Command("bash", "-c", braidBin+" --netns "+b.ns+" apply --confirm 2s -f "+changed+" && sleep 60")
	shell.Env = append(os.Environ(), b.env...)
	shell.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out nstest.SyncBuffer
	shell.Stdout, shell.Stderr = &out, &out
	if err := shell.Start(); err != nil {
		t.Fatal(err)
	}
	// The apply's last line, "Verified", comes right after "Run `braid
	// confirm`": the shell is killed once the apply has said both (it is
	// in its sleep then), never between the two.
	deadline := time.Now().Add(60 * time.Second)
	// The apply's last line: the change took, and the reverter is armed.
	for !strings.Contains(out.String(), "Verified: the live state matches the spec.") {
		if time.Now().After(deadline) {
			t.Fatalf("apply --confirm did not finish:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(-shell.Process.Pid, syscall.SIGKILL)
	shell.Wait()
	if !strings.Contains(out.String(), "Run `braid confirm` before") {
		t.Fatalf("the apply armed no reverter:\n%s", out.String())
	}
	b.waitReverted(t, 60*time.Second)
	if after := b.snapshot(); after != good {
		t.Errorf("the revert did not restore the state before the apply:\n%s", diffLines(good, after))
	}
	b.must(0, "plan", "-f", writeSpec(t, labSpec))
	if r := b.braid(nil, "confirm"); r.code != 1 || !strings.Contains(r.stderr, "nothing to confirm") {
		t.Errorf("confirm after the revert: exit %d %s", r.code, r.stderr)
	}

	// Confirmed, the change stays: the reverter stands down.
	r := b.must(0, "apply", "--confirm", "10m", "-f", changed)
	if !strings.Contains(r.stdout, "Run `braid confirm` before") {
		t.Errorf("apply --confirm output:\n%s", r.stdout)
	}
	reverter := b.pendingNow(t).Reverter
	if r := b.must(0, "confirm"); !strings.Contains(r.stdout, "Confirmed: the change stays") {
		t.Errorf("confirm: %s", r.stdout)
	}
	waitGone(t, reverter)
	b.must(0, "plan", "-f", changed)

	// The first apply ever, unconfirmed, goes back to nothing at all.
	b.must(0, "destroy", "--yes")
	if after := b.snapshot(); after != pristine {
		t.Fatalf("destroy:\n%s", diffLines(pristine, after))
	}
	b.must(0, "apply", "--confirm", "1s", "-f", changed)
	b.waitReverted(t, 60*time.Second)
	if after := b.snapshot(); after != pristine {
		t.Errorf("reverting a first apply did not restore the pristine namespace:\n%s", diffLines(pristine, after))
	}
}

// A newer apply replaces the one that waited: the old reverter stands down
// (if it did not, its deadline would take the box back to the state before
// it), and once the newer one is confirmed, it stays.
func TestApplyConfirmSupersededByANewerApply(t *testing.T) {
	b := newBox(t)
	b.must(0, "apply", "-f", writeSpec(t, labSpec))
	specA := writeSpec(t, strings.Replace(labSpec, "priority: 20", "priority: 30", 1))
	specB := writeSpec(t, strings.Replace(labSpec, "priority: 20", "priority: 40", 1))
	b.must(0, "apply", "--confirm", "2s", "-f", specA)
	a := b.pendingNow(t)
	b.must(0, "apply", "--confirm", "10m", "-f", specB)
	b.must(0, "confirm")
	// Past A's deadline, and A's reverter gone.
	time.Sleep(time.Until(a.Deadline.Add(500 * time.Millisecond)))
	waitGone(t, a.Reverter)
	if r := b.braid(nil, "plan", "-f", specB); r.code != 0 {
		lg, _ := os.ReadFile(filepath.Join(b.stateDir, b.ns, revertLog))
		t.Errorf("after A's deadline, the box is not B's any more (exit %d):\n%s\nrevert log:\n%s", r.code, r.stdout, lg)
	}
}

// A pending-confirm.json that cannot be read is no confirmation: apply
// and confirm refuse, naming the file and the way out, and the reverter
// reverts at its deadline with the copy it read when it started.
func TestApplyConfirmCorruptPendingFileReverts(t *testing.T) {
	b := newBox(t)
	spec := writeSpec(t, labSpec)
	b.must(0, "apply", "-f", spec)
	good := b.snapshot()
	changed := writeSpec(t, strings.Replace(labSpec, "priority: 20", "priority: 30", 1))
	b.must(0, "apply", "--confirm", "3s", "-f", changed)
	path := filepath.Join(b.stateDir, b.ns, pendingFile)
	if err := os.WriteFile(path, []byte(`{"token": "ab`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := b.must(1, "apply", "-f", spec)
	if !strings.Contains(r.stderr, path+" is corrupt") || !strings.Contains(r.stderr, "its reverter reverts it at its deadline") {
		t.Errorf("apply with a corrupt pending file:\n%s", r.stderr)
	}
	r = b.must(1, "confirm")
	if !strings.Contains(r.stderr, path+" is corrupt") || !strings.Contains(r.stderr, "apply it again") {
		t.Errorf("confirm with a corrupt pending file:\n%s", r.stderr)
	}
	b.waitReverted(t, 60*time.Second)
	if after := b.snapshot(); after != good {
		t.Errorf("the revert did not restore the state before the unconfirmed apply:\n%s", diffLines(good, after))
	}
	if log, _ := os.ReadFile(filepath.Join(b.stateDir, b.ns, revertLog)); !strings.Contains(string(log), "reverting with the copy this reverter read") {
		t.Errorf("the revert log does not say why:\n%s", log)
	}
}

// FuzzDecodePending: pending-confirm.json is read back by apply, confirm
// and the reverter. Decoding never panics, and what it accepts has a token
// and a deadline.
func FuzzDecodePending(f *testing.F) {
	f.Add([]byte(`{"token": "0123456789abcdef", "deadline": "2026-12-05T12:00:00Z", "previous": "YXBp", "previousName": "/var/lib/braid/x/applied.yaml", "reverter": 4242}`))
	f.Add([]byte(`{"token": "ab`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePending(b)
		if err == nil && (p.Token == "" || p.Deadline.IsZero()) {
			t.Fatalf("accepted %+v", p)
		}
	})
}

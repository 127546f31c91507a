package netlink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/braid-router/braid/drivers/failpoint"
	"github.com/braid-router/braid/drivers/record"
	"github.com/braid-router/braid/internal/netns"
	"github.com/braid-router/braid/reconcile/plan"
)

// recordState is what a batch records: links, sysctls and addresses.
func recordState() []plan.Resource {
	return resources[plan.Resource](
		Link{Name: "wan0", Up: true, MTU: 1400},
		Sysctl{Name: "net.ipv4.ip_forward", Value: "1"},
		Sysctl{Name: "net.ipv4.conf.wan0.rp_filter", Value: "2"},
		Addr{Link: "wan0", Prefix: pfx("10.9.0.2/24")},
		Addr{Link: "wan0", Prefix: pfx("fd00:9::2/64")},
	)
}

// recorded lists the record's entries as "KIND KEY", sorted.
func recorded(rec *record.Record) []string {
	var out []string
	for _, kind := range []string{KindLink, KindSysctl, KindAddress} {
		for _, k := range rec.Keys(kind) {
			out = append(out, kind+" "+k)
		}
	}
	slices.Sort(out)
	return out
}

var recordStateEntries = []string{
	"address wan0 10.9.0.2/24", "address wan0 fd00:9::2/64",
	"link wan0",
	"sysctl net.ipv4.conf.wan0.rp_filter", "sysctl net.ipv4.ip_forward",
}

func TestApplyBatchWritesTheRecordOnceEachWay(t *testing.T) {
	bothWays(t, func(t *testing.T, r *rig) {
		r.veth("wan0", "wan0p")
		before := r.sysctl("net.ipv4.ip_forward") + r.sysctl("net.ipv4.conf.wan0.rp_filter")
		want := recordState()
		w := r.rec.Writes()
		changes := r.convergeBatch(want)
		if len(changes) != 5 {
			t.Fatalf("%d changes: %s", len(changes), strings.Join(actions(changes), " "))
		}
		if n := r.rec.Writes() - w; n != 1 {
			t.Errorf("the batch wrote the record %d times, want once, ahead of its writes", n)
		}
		if got := recorded(r.rec); !slices.Equal(got, recordStateEntries) {
			t.Errorf("recorded %q, want %q", got, recordStateEntries)
		}
		r.settled(want)

		// Putting everything back: one write after the batch, for the
		// removals.
		w = r.rec.Writes()
		r.convergeBatch(nil)
		if n := r.rec.Writes() - w; n != 1 {
			t.Errorf("the batch of deletes wrote the record %d times, want once, after it", n)
		}
		if !r.rec.Empty() {
			t.Errorf("record after the deletes: %q", recorded(r.rec))
		}
		if after := r.sysctl("net.ipv4.ip_forward") + r.sysctl("net.ipv4.conf.wan0.rp_filter"); after != before {
			t.Errorf("sysctls %q after the deletes, want %q", after, before)
		}
		if l := r.link("wan0"); l.up() || l.MTU != 1500 {
			t.Errorf("wan0 after the deletes: %+v", l)
		}
	})
}

// A batch that stops at a refused change keeps only the entries of what it
// did, as one change at a time would.
func TestApplyBatchRefusedForgetsWhatItWroteAhead(t *testing.T) {
	r := newRig(t)
	r.veth("wan0", "wan0p")
	// The kernel refuses IPv6 addresses on a link with IPv6 disabled.
	r.setSysctl("net.ipv6.conf.wan0.disable_ipv6", "1")
	v4, v6, later := Addr{Link: "wan0", Prefix: pfx("10.9.0.2/24")}, Addr{Link: "wan0", Prefix: pfx("fd00:9::2/64")}, Addr{Link: "wan0", Prefix: pfx("10.9.1.2/24")}
	changes := []plan.Change{
		planCreate(Link{Name: "wan0", Up: true}),
		planCreate(v4),
		planCreate(v6),
		planCreate(Sysctl{Name: "net.ipv4.ip_forward", Value: "1"}),
		planCreate(later),
	}
	w := r.rec.Writes()
	n, err, _ := r.applyBatch(changes)
	if n != 2 || err == nil || !strings.Contains(err.Error(), v6.Address()) {
		t.Fatalf("applied %d, error %v; want 2 and the refusal of %s", n, err, v6.Address())
	}
	if got, want := recorded(r.rec), []string{"address " + v4.recordKey(), "link wan0"}; !slices.Equal(got, want) {
		t.Errorf("recorded %q, want %q: what took effect, nothing for the refused change or those after it", got, want)
	}
	if n := r.rec.Writes() - w; n != 2 {
		t.Errorf("%d writes of the record, want 2: ahead of the batch, and after it", n)
	}
	again, err := record.Open(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := recorded(again), recorded(r.rec); !slices.Equal(got, want) {
		t.Errorf("on disk %q, in memory %q", got, want)
	}
	r.rollback(changes[:n])
	if !r.rec.Empty() {
		t.Errorf("record after the rollback: %q", recorded(r.rec))
	}
}

// TestApplyBatchCrashAtFirstWrite ends a process at the first kernel write
// of a batch (in a child process: the failpoint exits): the entries of the
// whole batch are on disk by then, and converging and deleting afterwards
// restores what the batch found.
func TestApplyBatchCrashAtFirstWrite(t *testing.T) {
	if ns := os.Getenv("BRAID_TEST_WAL_NS"); ns != "" {
		writeAheadChild(ns, os.Getenv("BRAID_TEST_WAL_DIR"))
		return
	}
	r := newRig(t)
	r.veth("wan0", "wan0p")
	pristine := r.sysctl("net.ipv4.ip_forward") + r.sysctl("net.ipv4.conf.wan0.rp_filter")
	cmd := exec.Command(os.Args[0], "-test.run=^TestApplyBatchCrashAtFirstWrite$")
	cmd.Env = append(os.Environ(), "BRAID_TEST_WAL_NS="+r.ns, "BRAID_TEST_WAL_DIR="+r.dir, failpoint.Env+"=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != failpoint.ExitCode {
		t.Fatalf("child: %v\n%s", err, out)
	}
	onDisk, err := record.Open(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := recorded(onDisk); !slices.Equal(got, recordStateEntries) {
		t.Fatalf("on disk after a crash at the first write: %q, want every entry of the batch %q", got, recordStateEntries)
	}
	// The rig's driver reads the record the child left.
	rec, err := record.Open(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	r.rec = rec
	r.d.rec = rec
	r.convergeBatch(recordState())
	r.settled(recordState())
	r.convergeBatch(nil)
	if after := r.sysctl("net.ipv4.ip_forward") + r.sysctl("net.ipv4.conf.wan0.rp_filter"); after != pristine {
		t.Errorf("sysctls %q after the deletes, want %q", after, pristine)
	}
	if l := r.link("wan0"); l.up() || l.MTU != 1500 {
		t.Errorf("wan0 after the deletes: %+v", l)
	}
	if got := r.ip("-o", "addr", "show", "dev", "wan0", "scope", "global"); got != "" {
		t.Errorf("addresses left: %s", got)
	}
	if !r.rec.Empty() {
		t.Errorf("record after the deletes: %q", recorded(r.rec))
	}
}

// writeAheadChild converges recordState() in ns with the record in dir and
// the failpoint armed from the environment; it exits 86 at the armed write.
func writeAheadChild(ns, dir string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	runtime.LockOSThread()
	if err := netns.Enter(ns); err != nil {
		fail(err)
	}
	writes, err := failpoint.FromEnv()
	if err != nil {
		fail(err)
	}
	rec, err := record.Open(dir)
	if err != nil {
		fail(err)
	}
	d, err := New(Options{Record: rec, Writes: writes})
	if err != nil {
		fail(err)
	}
	want := recordState()
	live, err := d.Observe(context.Background(), want)
	if err != nil {
		fail(err)
	}
	changes, _ := plan.Diff(want, live)
	n, err := d.ApplyBatch(context.Background(), changes)
	fail(fmt.Errorf("the failpoint did not fire: applied %d of %d (%v)", n, len(changes), err))
}

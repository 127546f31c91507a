package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/drivers/links"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/gittest"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
)

// daemon is a `braid run` process in a box.
type daemon struct {
	b    *box
	cmd  *exec.Cmd
	logs *nstest.SyncBuffer
}

func (b *box) startDaemon(args ...string) *daemon {
	b.t.Helper()
	cmd := exec.Command(braidBin, append([]string{"--netns", b.ns, "run", "--resync", "1h"}, args...)...)
	cmd.Env = append(os.Environ(), b.env...)
	logs := &nstest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	d := &daemon{b: b, cmd: cmd, logs: logs}
	b.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
		}
		if b.t.Failed() {
			b.t.Logf("daemon logs:\n%s", logs.String())
		}
	})
	return d
}

// stop sends sig to the daemon and waits for it to exit.
func (d *daemon) stop(sig syscall.Signal) {
	d.cmd.Process.Signal(sig)
	d.cmd.Wait()
}

// status asks the daemon for its status through the CLI.
func (d *daemon) status() (reconcile.Status, bool) {
	r := d.b.braid(nil, "status", "--json")
	var st reconcile.Status
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
		return st, false
	}
	return st, true
}

// until polls the daemon's status until cond holds, for up to 60 s (the
// suite runs on a busy machine: a deadline is a bound on a hang, not a
// measurement).
func (d *daemon) until(what string, cond func(reconcile.Status) bool) reconcile.Status {
	d.b.t.Helper()
	return d.untilWithin(what, 60*time.Second, cond)
}

// untilWithin polls the daemon's status until cond holds, for up to
// within.
func (d *daemon) untilWithin(what string, within time.Duration, cond func(reconcile.Status) bool) reconcile.Status {
	d.b.t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, ok := d.status()
		if ok && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			st.Objects = nil // the rest says what matters
			b, _ := json.MarshalIndent(st, "", "  ")
			d.b.t.Fatalf("timed out waiting for %s; last status:\n%s\nlogs:\n%s", what, b, d.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reload makes the daemon read its spec again (SIGHUP) and waits for
// the pass that did, after the one of st.
func (d *daemon) reload(st reconcile.Status) reconcile.Status {
	d.b.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		d.b.t.Fatal(err)
	}
	return d.until("the reload", func(now reconcile.Status) bool {
		return converged(now) && now.Triggered["reload"] > st.Triggered["reload"]
	})
}

func converged(st reconcile.Status) bool {
	return st.LastPass != nil && st.LastPass.Result == reconcile.ResultConverged
}

func TestRunRepairsDriftFromKernelEvents(t *testing.T) {
	b := newBox(t)
	spec := writeSpec(t, labSpec)
	d := b.startDaemon("-f", spec, "--poll", "200ms")
	st := d.until("the first pass", converged)
	if st.Applying != 1 || st.Repairs != 0 {
		t.Fatalf("first pass: %+v", st)
	}
	// While the daemon runs, it is the one writer: a CLI apply is refused,
	// a CLI plan on the converged box is empty.
	if r := b.braid(nil, "apply", "-f", spec); r.code != 1 || !strings.Contains(r.stderr, "braid run is the one writer") || !strings.Contains(r.stderr, "change its spec instead: file "+spec) {
		t.Errorf("CLI apply while the daemon runs: exit %d: %s", r.code, r.stderr)
	}
	b.must(0, "plan", "-f", spec)

	for _, drift := range [][]string{
		{"ip", "-n", b.ns, "route", "del", "default", "via", "10.101.0.1", "table", "main"},
		{"ip", "-n", b.ns, "route", "del", "10.102.0.0/24", "dev", "wan2", "table", "main"},
		{"ip", "-n", b.ns, "-6", "rule", "del", "pref", "7000"},
		{"ip", "-n", b.ns, "addr", "del", "10.101.0.2/24", "dev", "wan1"},
		{"ip", "-n", b.ns, "link", "set", "wan2", "down"},
	} {
		before, _ := d.status()
		if out, err := exec.Command(drift[0], drift[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", drift, err, out)
		}
		// One drift may take more than one pass (the kernel's own
		// consequences of it arrive as further events): repaired means
		// counted, converged, and nothing left to plan.
		d.until("repair of "+strings.Join(drift[3:], " "), func(st reconcile.Status) bool {
			return st.Repairs > before.Repairs && converged(st) && b.braid(nil, "plan", "-f", spec).code == 0
		})
	}
	if !strings.Contains(d.logs.String(), "applied") {
		t.Errorf("no per-change log lines:\n%s", d.logs.String())
	}
	// nftables sends events too; MPTCP endpoints, which send none, are
	// polled.
	repairs := d.until("", converged).Repairs
	for _, drift := range [][]string{
		{"ip", "netns", "exec", b.ns, "nft", "delete", "table", "inet", "braid"},
		{"ip", "-n", b.ns, "mptcp", "endpoint", "flush"},
	} {
		if out, err := exec.Command(drift[0], drift[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", drift, err, out)
		}
		repairs++
		d.until("repair after "+strings.Join(drift[4:], " "), func(st reconcile.Status) bool {
			return st.Repairs == repairs && converged(st)
		})
		b.must(0, "plan", "-f", spec)
	}
}

func TestRunFollowsTheSpecFile(t *testing.T) {
	b := newBox(t)
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.yaml")
	os.WriteFile(spec, []byte(labSpec), 0o644)
	d := b.startDaemon("-f", spec)
	st := d.until("the first pass", converged)
	applying := st.Applying

	// An atomic rename (what editors do) is one pass that applies it.
	tmp := filepath.Join(dir, ".spec.yaml.swp")
	os.WriteFile(tmp, []byte(strings.Replace(labSpec, "priority: 20", "priority: 30", 1)), 0o644)
	os.Rename(tmp, spec)
	st = d.until("the renamed spec", func(st reconcile.Status) bool { return st.Applying == applying+1 && converged(st) })
	if got := b.ip("-4", "route", "show", "default"); !strings.Contains(got, "metric 30") {
		t.Errorf("the edit was not applied:\n%s", got)
	}
	// An invalid edit keeps the last good state and says why.
	good := st.Revision
	os.WriteFile(spec, []byte(strings.Replace(labSpec, "priority: 10", "prority: 10", 1)), 0o644)
	st = d.until("the rejection", func(st reconcile.Status) bool { return st.SpecError != "" })
	if st.Revision != good || !strings.Contains(st.SpecError, `did you mean "priority"`) {
		t.Errorf("status after an invalid edit: revision %s (good %s), error %q", st.Revision, good, st.SpecError)
	}
	b.must(0, "plan", "-f", writeSpec(t, strings.Replace(labSpec, "priority: 20", "priority: 30", 1)))
	r := b.must(0, "status")
	if !strings.Contains(r.stdout, "rejected:") || !strings.Contains(r.stdout, "prority") {
		t.Errorf("status text does not show the rejected revision:\n%s", r.stdout)
	}
	if extra := st.Applying - applying - 1; extra != 0 {
		t.Errorf("%d extra applying passes", extra)
	}
}

func TestRunFollowsASymlinkSwap(t *testing.T) {
	b := newBox(t)
	dir := t.TempDir()
	// As git checkouts and Kubernetes ConfigMaps do it: the spec path is a
	// symlink whose target directory is swapped atomically.
	for _, v := range []struct{ name, body string }{
		{"v1", labSpec},
		{"v2", strings.Replace(labSpec, "priority: 20", "priority: 40", 1)},
	} {
		os.Mkdir(filepath.Join(dir, v.name), 0o755)
		os.WriteFile(filepath.Join(dir, v.name, "spec.yaml"), []byte(v.body), 0o644)
	}
	os.Symlink("v1", filepath.Join(dir, "..data"))
	os.Symlink("..data/spec.yaml", filepath.Join(dir, "spec.yaml"))
	d := b.startDaemon("-f", filepath.Join(dir, "spec.yaml"))
	st := d.until("the first pass", converged)
	applying := st.Applying
	os.Symlink("v2", filepath.Join(dir, "..data_tmp"))
	os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data"))
	st = d.until("the swapped spec", func(st reconcile.Status) bool { return st.Applying == applying+1 && converged(st) })
	if got := b.ip("-4", "route", "show", "default"); !strings.Contains(got, "metric 40") {
		t.Errorf("the swapped spec was not applied:\n%s", got)
	}
	// A reload reads the same spec: nothing more to apply.
	if st := d.reload(st); st.Applying != applying+1 {
		t.Errorf("one swap gave %d applying passes", st.Applying-applying)
	}
}

func TestRunStopsOnSIGTERMAndLeavesRouting(t *testing.T) {
	b := newBox(t)
	d := b.startDaemon("-f", writeSpec(t, labSpec))
	d.until("the first pass", converged)
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("braid run exited with %v\n%s", err, d.logs.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("braid run did not stop on SIGTERM")
	}
	// Routing works without braid: routes and rules stay.
	if got := b.ip("-4", "route", "show", "default"); !strings.Contains(got, "proto 98 metric 10") {
		t.Errorf("routes withdrawn on SIGTERM:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(b.runDir, b.ns, "braid.sock")); !os.IsNotExist(err) {
		t.Errorf("control socket left behind: %v", err)
	}
	if r := b.braid(nil, "status"); r.code != 1 || !strings.Contains(r.stderr, "no braid daemon") {
		t.Errorf("status without a daemon: exit %d %s", r.code, r.stderr)
	}
	var buf bytes.Buffer
	buf.WriteString(d.logs.String())
	if !strings.Contains(buf.String(), "braid run stopped") {
		t.Errorf("no stop line in the logs:\n%s", buf.String())
	}
}

// supervisedSpec is the lab spec with sessions: isp1 tracked for health,
// isp2 on DHCP with SFR's vendor class.
var supervisedSpec = strings.Replace(strings.Replace(labSpec,
	"    ipv4: {static: {address: 10.102.0.2/24, gateway: 10.102.0.1}}\n",
	"    ipv4: {dhcp: {vendorClass: neufbox_a}}\n", 1),
	"    priority: 10\n",
	"    priority: 10\n    health: {probes: [{icmp: 198.51.100.80}]}\n", 1)

// standIns points the daemon's stand-in sessions at a fresh directory and
// returns a function that writes the orders of one session.
func (b *box) standIns(t *testing.T) (order func(id, orders string), state func(id string) standInState) {
	dir := t.TempDir()
	b.env = append(b.env, standInsEnv+"="+dir)
	order = func(id, orders string) {
		t.Helper()
		tmp := filepath.Join(dir, ".tmp")
		if err := os.WriteFile(tmp, []byte(orders), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, fileID(id)+".json")); err != nil {
			t.Fatal(err)
		}
	}
	state = func(id string) standInState {
		var st standInState
		b, _ := os.ReadFile(filepath.Join(dir, fileID(id)+".state.json"))
		json.Unmarshal(b, &st)
		return st
	}
	return order, state
}

func sessionIn(st reconcile.Status, addr string) (session.Status, bool) {
	for _, s := range st.Sessions {
		if s.Address == addr {
			return s, true
		}
	}
	return session.Status{}, false
}

// The supervisor end to end, through the binary: a spec change starts,
// reconfigures and stops sessions; a session's fact turns into kernel
// objects and back; a crashing or panicking session is restarted with
// backoff and never takes the daemon down; a CLI plan where the daemon
// runs shows no change; SIGTERM stops the sessions and leaves routing.
func TestRunSupervisesSessions(t *testing.T) {
	b := newBox(t)
	order, state := b.standIns(t)
	spec := writeSpec(t, supervisedSpec)
	d := b.startDaemon("-f", spec)
	st := d.until("both sessions started, waiting for orders", func(st reconcile.Status) bool {
		h, ok1 := sessionIn(st, "session[health/isp1]")
		c, ok2 := sessionIn(st, "session[dhcp4/isp2]")
		return converged(st) && ok1 && ok2 && h.State == session.Waiting && c.State == session.Waiting
	})
	if got := b.ip("-4", "addr", "show", "dev", "wan2"); strings.Contains(got, "10.102.0.2") {
		t.Fatalf("an address on wan2 before any lease:\n%s", got)
	}
	if c, _ := sessionIn(st, "session[dhcp4/isp2]"); !slices.Contains(c.Config, plan.Field{Name: "vendorClass", Value: "neufbox_a"}) {
		t.Errorf("the DHCP session's configuration in status: %+v", c.Config)
	}

	// A lease: address, routes, rule and MPTCP endpoint on wan2.
	order("dhcp4/isp2", `{"lease": {"address": "10.102.0.2/24", "gateway": "10.102.0.1", "lifetime": "1h"}}`)
	st = d.until("the lease converged", func(st reconcile.Status) bool {
		// Wait for a pass that compiled the lease, whatever triggered
		// it and whatever passes followed (the links' carrier, the
		// session starting to run).
		return converged(st) && len(learnt(st)) == 1 &&
			slices.ContainsFunc(st.Objects, func(o plan.Status) bool { return o.Address == "address[wan2 10.102.0.2/24]" })
	})
	if e := learnt(st)[0]; e.Owner != "dhcp4/isp2" || e.Kind != "lease4" || e.Expires.IsZero() || e.Process {
		t.Errorf("the lease fact in status: %+v", e)
	}
	if got := b.ip("-4", "addr", "show", "dev", "wan2"); !strings.Contains(got, "10.102.0.2/24") {
		t.Errorf("no leased address on wan2:\n%s", got)
	}
	if got := b.ip("-4", "route", "show", "default"); !strings.Contains(got, "via 10.102.0.1 dev wan2 proto 98 metric 20") {
		t.Errorf("no default route via the lease's gateway:\n%s", got)
	}
	if got := b.ip("mptcp", "endpoint", "show"); !strings.Contains(got, "10.102.0.2") {
		t.Errorf("no MPTCP endpoint for the lease:\n%s", got)
	}
	// The CLI plans with the daemon's facts and sessions: nothing to do.
	if r := b.braid(nil, "plan", "-f", spec); r.code != 0 {
		t.Errorf("plan while the daemon runs: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A health verdict moves the default route, and back.
	order("health/isp1", `{"healthy": false}`)
	d.until("isp1 unhealthy", func(reconcile.Status) bool {
		return !strings.Contains(b.ip("-4", "route", "show", "default"), "via 10.101.0.1")
	})
	order("health/isp1", `{"healthy": true}`)
	d.until("isp1 healthy", func(reconcile.Status) bool {
		return strings.Contains(b.ip("-4", "route", "show", "default"), "via 10.101.0.1")
	})

	// A changed vendor class reconfigures the client in place.
	writeSpecTo(t, spec, strings.Replace(supervisedSpec, "neufbox_a", "neufbox_b", 1))
	d.until("the new vendor class", func(reconcile.Status) bool { return state("dhcp4/isp2").Config["vendorClass"] == "neufbox_b" })
	if s := state("dhcp4/isp2"); s.Starts != 1 || s.Updates != 1 {
		t.Errorf("reconfiguring: %d starts, %d updates; want 1 start, 1 update in place", s.Starts, s.Updates)
	}

	// A crash: reported, restarted after a backoff; the daemon goes on.
	order("dhcp4/isp2", `{"crash": "the modem went away"}`)
	st = d.until("the crash reported", func(st reconcile.Status) bool {
		c, _ := sessionIn(st, "session[dhcp4/isp2]")
		return c.Restarts >= 1 && strings.Contains(c.LastError, "the modem went away")
	})
	order("dhcp4/isp2", `{"lease": {"address": "10.102.0.3/24", "gateway": "10.102.0.1"}}`)
	d.until("the restarted session's new lease", func(st reconcile.Status) bool {
		c, _ := sessionIn(st, "session[dhcp4/isp2]")
		addrs := b.ip("-4", "addr", "show", "dev", "wan2")
		// Added before the old one goes: wait for both.
		return c.State == session.Running && state("dhcp4/isp2").Starts >= 2 &&
			strings.Contains(addrs, "10.102.0.3/24") && !strings.Contains(addrs, "10.102.0.2/")
	})
	order("health/isp1", `{"panic": "index out of range"}`)
	d.until("the panic recovered", func(st reconcile.Status) bool {
		h, _ := sessionIn(st, "session[health/isp1]")
		return h.Panics >= 1
	})
	// The daemon still converges.
	b.ip("-4", "route", "del", "default", "via", "10.101.0.1")
	d.until("the route repaired after the panic", func(st reconcile.Status) bool {
		return converged(st) && strings.Contains(b.ip("-4", "route", "show", "default"), "via 10.101.0.1")
	})

	// Sections gone from the spec: their sessions stop and their facts go.
	writeSpecTo(t, spec, labSpec)
	st = d.until("the sessions stopped", func(st reconcile.Status) bool {
		return converged(st) && len(st.Sessions) == 0 && len(learnt(st)) == 0
	})
	if got := b.ip("-4", "addr", "show", "dev", "wan2"); !strings.Contains(got, "10.102.0.2/24") || strings.Contains(got, "10.102.0.3") {
		t.Errorf("wan2 after going back to a static address:\n%s", got)
	}
	d.stop(syscall.SIGTERM)
	if got := b.ip("-4", "route", "show", "default"); !strings.Contains(got, "via 10.101.0.1") {
		t.Errorf("SIGTERM took routes away:\n%s", got)
	}
	if out := nstestNft(t, b.ns); !strings.Contains(out, "masquerade") {
		t.Errorf("SIGTERM took NAT away:\n%s", out)
	}
	// Without the daemon, the CLI lists the sessions as run by braid run.
	r := b.braid(nil, "plan", "-f", spec)
	if r.code != 0 {
		t.Errorf("plan after the daemon: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// learnt lists the facts in st that sessions learnt, leaving out what
// the daemon observes of the links.
func learnt(st reconcile.Status) []facts.Entry {
	var out []facts.Entry
	for _, e := range st.Facts.Entries {
		if e.Owner != links.Owner {
			out = append(out, e)
		}
	}
	return out
}

func nstestNft(t *testing.T, ns string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "inet", "braid").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v %s", err, out)
	}
	return string(out)
}

// The daemon killed right after its Nth kernel write, then restarted,
// converges with nothing duplicated or leaked.
func TestRunCrashMidApplyThenRestart(t *testing.T) {
	b := newBox(t)
	spec := writeSpec(t, labSpec)
	pristine := b.snapshot()
	b.must(0, "apply", "-f", spec)
	clean := b.snapshot()
	b.must(0, "destroy", "--yes")
	for _, n := range []int{1, 2, 3, 5, 8, 13, 21, 34, 55, 89} {
		// The daemon crashes at its Nth write; if it never makes that
		// many, it would run forever: bounded.
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		cmd := exec.CommandContext(ctx, braidBin, "--netns", b.ns, "run", "-f", spec)
		cmd.Env = append(append(os.Environ(), b.env...), "BRAID_FAILPOINT_WRITES="+strconv.Itoa(n))
		out, err := cmd.CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 86 {
			t.Fatalf("failpoint %d: %v (want exit 86 within %s)\n%s", n, err, commandTimeout, out)
		}
		d := b.startDaemon("-f", spec)
		d.until("convergence after the crash", converged)
		if got := b.snapshot(); got != clean {
			t.Fatalf("after a crash at write %d and a restart, the state differs from a clean apply:\n%s", n, diffLines(clean, got))
		}
		d.stop(syscall.SIGTERM)
		b.must(0, "destroy", "--yes")
		if got := b.snapshot(); got != pristine {
			t.Fatalf("after a crash at write %d, destroy did not restore:\n%s", n, diffLines(pristine, got))
		}
	}
}

// SIGHUP reads the spec again: a commit the daemon's poll would see only
// in an hour is applied at once after SIGHUP, and not before.
func TestRunSIGHUPReadsTheSpecAgain(t *testing.T) {
	b := newBox(t)
	r := gittest.NewRepo(t, map[string][]byte{gitSpecPath: []byte(labSpec)})
	d := b.startGitDaemon("file://"+r.Dir, "--interval", "1h")
	st := d.applied(r.Head().String(), reconcile.Status{})
	c2 := commitSpec(r, strings.Replace(labSpec, "priority: 20", "priority: 30", 1))
	// A pass that does not read the spec (a kernel repair) does not see
	// the commit.
	b.ip("-4", "route", "del", "default", "via", "10.101.0.1")
	st = d.until("the repair", func(now reconcile.Status) bool { return now.Repairs > st.Repairs && converged(now) })
	if st.Revision == c2 {
		t.Fatal("the commit was read without SIGHUP: the test proves nothing")
	}
	d.reload(st)
	d.applied(c2, st)
	wantRoute(b, "default via 10.102.0.1 dev wan2 proto 98 metric 30")
}

// The daemon against the real drivers: its own writes trigger no pass, a
// full pass comes every --resync, and a pass the kernel refuses never
// stops it: it retries until the cause is gone.
func TestRunLiveness(t *testing.T) {
	b := newBox(t)
	// The kernel refuses IPv6 addresses on wan2 for now.
	nstest.In(t, b.ns, "sysctl", "-qw", "net.ipv6.conf.wan2.disable_ipv6=1")
	spec := writeSpec(t, labSpec)
	d := b.startDaemon("-f", spec, "--resync", "2s")
	st := d.until("a failed pass", func(st reconcile.Status) bool { return st.Failures >= 1 })
	if !strings.Contains(st.LastPass.Error, "address[wan2 2001:db8:102::2/64]") {
		t.Errorf("the failed pass does not name the refused object: %q", st.LastPass.Error)
	}
	nstest.In(t, b.ns, "sysctl", "-qw", "net.ipv6.conf.wan2.disable_ipv6=0")
	st = d.until("the retry converging", converged)
	if d.cmd.ProcessState != nil {
		t.Fatal("the daemon exited")
	}
	// The kernel reports a link's carrier up to a second after braid
	// brought it up (linkwatch): wait for every carrier and a pass after
	// it, so that its notifications are not taken for those of the next
	// writes.
	st = d.until("every link's carrier", func(now reconcile.Status) bool {
		n := 0
		for _, e := range now.Facts.Entries {
			if i := e.Fact.Interface; i != nil && i.Carrier {
				n++
			}
		}
		return converged(now) && n == 3
	})
	// Re-enabling IPv6 on wan2 gave it a kernel link-local address whose
	// DAD ends a second or more later, with notifications braid did not
	// cause: wait for the end of every DAD, then for a pass after it.
	waitNoTentative(t, b.ns)
	st, _ = d.status()
	st = d.until("a pass after the carriers and DAD", func(now reconcile.Status) bool { return converged(now) && now.Passes > st.Passes })

	// A change of spec writes to the kernel; the notifications of those
	// writes trigger no pass of their own.
	writeSpecTo(t, spec, strings.Replace(labSpec, "priority: 20", "priority: 30", 1))
	st = d.until("the change applied", func(now reconcile.Status) bool {
		return converged(now) && now.Applying > st.Applying && now.Triggered["spec"] > st.Triggered["spec"]
	})
	// Every pass between the change and a reload afterwards, as the logs
	// tell them: none was triggered by the kernel.
	st = d.reload(st)
	logs := d.logs.String()
	after := logs[strings.LastIndex(logs, "triggers=[spec]"):]
	for _, line := range strings.Split(after, "\n") {
		if strings.Contains(line, "msg=pass ") && strings.Contains(line, "kernel") {
			t.Errorf("a pass was triggered by braid's own writes: %s", line)
		}
	}
	// A full pass comes on its own.
	d.until("a periodic pass", func(now reconcile.Status) bool {
		return now.Triggered["periodic"] > st.Triggered["periodic"]
	})
}

// waitNoTentative waits until no IPv6 address in ns is in duplicate
// address detection: its end is a kernel notification of its own.
func waitNoTentative(t *testing.T, ns string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out := nstest.In(t, ns, "ip", "-6", "-o", "addr", "show", "tentative")
		if strings.TrimSpace(out) == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("addresses still tentative after a minute:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/netns"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
	"github.com/braid-router/braid/probe"
	"github.com/braid-router/braid/reconcile"
)

// labSpecWithProbes is specs/lab.yaml with management probes (a YAML
// flow list).
func labSpecWithProbes(t *testing.T, probes string) string {
	t.Helper()
	spec := strings.Replace(readFile(t, "../../specs/lab.yaml"), "  management:\n", "  management:\n    probes: "+probes+"\n", 1)
	if !strings.Contains(spec, "probes:") {
		t.Fatal("specs/lab.yaml has no management section to add the probes to")
	}
	return spec
}

// unreachableGateways is a lab spec whose uplinks' gateways, IPv4 and
// IPv6, are moved to addresses nobody holds: a change that cuts the box
// off the Internet server and the peer.
func unreachableGateways(spec string) string {
	return strings.NewReplacer(
		"gateway: 10.101.0.1}", "gateway: 10.101.0.99}", "gateway: 10.102.0.1}", "gateway: 10.102.0.99}",
		"gateway: 2001:db8:101::1}", "gateway: 2001:db8:101::99}", "gateway: 2001:db8:102::1}", "gateway: 2001:db8:102::99}",
	).Replace(spec)
}

// routes lists the box's IPv4 routes of every table and braid's IPv6
// routes: what a revert must bring back exactly.
func (b *box) routes() string {
	return b.ip("-4", "route", "show", "table", "all") + b.ip("-6", "route", "show", "table", "all", "proto", "98")
}

// revertedOnce reports whether one revision was quarantined and a pass
// that started after that (so with the revision before it) converged.
func revertedOnce(st reconcile.Status) bool {
	return len(st.Quarantined) == 1 && converged(st) && st.LastPass.Start.After(st.Quarantined[0].At)
}

// unconfirmedReverted waits for the pass that reverted and quarantined
// a revision braid run --confirm window was not confirmed within, and
// checks that the quarantine's reason says so.
func (d *daemon) unconfirmedReverted(window string) {
	d.b.t.Helper()
	st := d.until("the revert", func(st reconcile.Status) bool {
		return len(st.Quarantined) == 1 && st.Triggered["revert"] > 0 && converged(st)
	})
	if !strings.Contains(st.Quarantined[0].Reason, "not confirmed within "+window) {
		d.b.t.Errorf("quarantine reason %q", st.Quarantined[0].Reason)
	}
}

// TestRunRevertsUnconfirmedRevisions: with --confirm, a new revision that
// nobody confirms is reverted (the kernel's state comes back exactly) and
// quarantined; a confirmed one stays. The revert half never needs to see
// the trial in time (a short window passes however busy the machine is);
// the confirm half uses a window no machine misses.
func TestRunRevertsUnconfirmedRevisions(t *testing.T) {
	b := newBox(t)
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.yaml")
	writeSpecTo(t, spec, labSpec)
	d := b.startDaemon("-f", spec, "--confirm", "2s")
	d.until("the first pass", converged)
	if r := b.braid(nil, "confirm"); r.code != 1 || !strings.Contains(r.stderr, "no change is waiting for confirmation") {
		t.Errorf("confirm with nothing pending: exit %d %s", r.code, r.stderr)
	}
	before := b.snapshot()
	writeSpecTo(t, spec, strings.Replace(labSpec, "10.101.0.2/24", "10.101.0.3/24", 1))
	d.unconfirmedReverted("2s")
	if after := b.snapshot(); after != before {
		t.Errorf("the revert did not bring the state back:\n%s", diffLines(before, after))
	}
	if r := b.must(0, "status"); !strings.Contains(r.stdout, "quarantined:") || !strings.Contains(r.stdout, "not confirmed") {
		t.Errorf("status does not show the quarantine:\n%s", r.stdout)
	}
	d.stop(syscall.SIGTERM)

	// Confirmed in time: stays.
	d = b.startDaemon("-f", spec, "--confirm", "10m")
	d.until("the restart", converged)
	writeSpecTo(t, spec, strings.Replace(labSpec, "10.101.0.2/24", "10.101.0.4/24", 1))
	d.until("the second trial", func(st reconcile.Status) bool { return st.Trial != nil })
	if r := b.must(0, "status"); !strings.Contains(r.stdout, "trial:") || !strings.Contains(r.stdout, "unless `braid confirm`") {
		t.Errorf("status does not show the trial:\n%s", r.stdout)
	}
	if r := b.must(0, "confirm"); !strings.Contains(r.stdout, "Confirmed revision") {
		t.Errorf("confirm: %s", r.stdout)
	}
	d.until("acceptance", func(st reconcile.Status) bool { return st.Trial == nil })
	if got := b.ip("-4", "addr", "show", "dev", "wan1"); !strings.Contains(got, "10.101.0.4/24") {
		t.Errorf("the confirmed change did not stay:\n%s", got)
	}
}

// TestRunRevertsARevisionThatCutsThePeer: in a lab, a revision whose
// gateway is wrong cuts the box off its aggregation peer; the daemon sees
// the peer stop answering and reverts it, with no one on site.
func TestRunRevertsARevisionThatCutsThePeer(t *testing.T) {
	l := labWithPeer(t)
	b := labBoxOf(t, l)
	good := readFile(t, "../../specs/lab.yaml") + `  aggregation:
    peer:
      address: 10.203.0.2:65101
      key: {env: BRAID_TEST_PEER_KEY}
`
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.yaml")
	os.WriteFile(spec, []byte(good), 0o644)
	d := b.startDaemon("-f", spec, "--probe-window", "2s")
	d.until("the first pass", converged)
	// The peer (braid's, in the lab) answers through the box's routes.
	if err := connectFrom(l, lab.RoleBox, "10.203.0.2:65101"); err != nil {
		t.Fatalf("the peer does not answer before the change: %v", err)
	}
	before := b.ip("-4", "route", "show", "default")
	// Both uplinks' gateways moved to addresses nobody has.
	bad := strings.NewReplacer("gateway: 10.101.0.1", "gateway: 10.101.0.99", "gateway: 10.102.0.1", "gateway: 10.102.0.99").Replace(good)
	os.WriteFile(spec, []byte(bad), 0o644)
	st := d.until("the revert", func(st reconcile.Status) bool {
		return len(st.Quarantined) == 1 && st.Triggered["revert"] > 0 && converged(st)
	})
	if !strings.Contains(st.Quarantined[0].Reason, "tcp 10.203.0.2:65101") {
		t.Errorf("quarantine reason %q does not name the peer", st.Quarantined[0].Reason)
	}
	if after := b.ip("-4", "route", "show", "default"); after != before {
		t.Errorf("default routes after the revert:\n%s\nbefore:\n%s", after, before)
	}
	if !strings.Contains(d.logs.String(), "reverting the change") {
		t.Errorf("the logs do not say so:\n%s", d.logs.String())
	}
}

// TestRunRevertsARevisionThatCutsAnICMPProbe: `{icmp: ADDR}` management
// probes, IPv4 and IPv6, run for real from the box through the lab. A
// revision that keeps the Internet server reachable is on trial until
// they answer again, then accepted; one whose gateways are wrong stops
// the echo replies, and the daemon reverts it within its probe window
// with no one on site.
func TestRunRevertsARevisionThatCutsAnICMPProbe(t *testing.T) {
	l := labtest.New(t)
	b := labBoxOf(t, l)
	targets := []probe.Target{{Kind: probe.ICMP, Addr: lab.ServerV4}, {Kind: probe.ICMP, Addr: lab.ServerV6}}
	good := labSpecWithProbes(t, `[{icmp: "`+lab.ServerV4+`"}, {icmp: "`+lab.ServerV6+`"}]`)
	spec := filepath.Join(t.TempDir(), "spec.yaml")
	os.WriteFile(spec, []byte(good), 0o644)
	// A window long enough for a busy machine: the revert waits it out.
	const window = 5 * time.Second
	d := b.startDaemon("-f", spec, "--probe-window", window.String())
	st := d.until("the first pass", converged)
	first := st.Revision

	// A change that keeps the server reachable: on trial for both
	// probes (they answered before it), accepted once they answer after
	// it. The trial may last a second only: the logs say it happened.
	os.WriteFile(spec, []byte(strings.Replace(good, "priority: 20", "priority: 30", 1)), 0o644)
	st = d.untilWithin("the acceptance of a harmless change", time.Minute, func(st reconcile.Status) bool {
		return st.Revision != first && st.Trial == nil && st.Applying > 0 && converged(st) &&
			strings.Contains(d.logs.String(), `msg="change accepted"`)
	})
	if !strings.Contains(d.logs.String(), "probes=2") || len(st.Quarantined) != 0 {
		t.Fatalf("the harmless change was not a trial of both probes, or was reverted: %+v\n%s", st.Quarantined, d.logs.String())
	}
	accepted := st.Revision
	before := b.routes()

	bad := unreachableGateways(strings.Replace(good, "priority: 20", "priority: 30", 1))
	os.WriteFile(spec, []byte(bad), 0o644)
	st = d.untilWithin("the trial of the bad change", time.Minute, func(st reconcile.Status) bool {
		return st.Trial != nil && st.Trial.Revision != accepted
	})
	// Both probes answered before the change, and the change was applied
	// (a revert of nothing would prove nothing).
	if !slices.Equal(st.Trial.Waiting, targets) {
		t.Errorf("the trial waits for %v, want %v", st.Trial.Waiting, targets)
	}
	wantRoute(b, "default via 10.101.0.99 dev wan1")
	st = d.untilWithin("the revert", time.Minute, revertedOnce)
	q := st.Quarantined[0]
	for _, tg := range targets {
		if !strings.Contains(q.Reason, tg.String()) {
			t.Errorf("the quarantine reason does not name %s: %q", tg, q.Reason)
		}
	}
	if !strings.Contains(q.Reason, "no echo reply") {
		t.Errorf("the quarantine reason does not say why: %q", q.Reason)
	}
	if st.Revision != accepted {
		t.Errorf("after the revert: revision %s, want %s", st.Revision, accepted)
	}
	if after := b.routes(); after != before {
		t.Errorf("routes after the revert:\n%s\nbefore:\n%s", after, before)
	}
	// And the server answers the box again.
	for _, tg := range targets {
		if err := netns.Do(b.ns, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			return (&probe.Prober{}).Probe(ctx, tg)
		}); err != nil {
			t.Errorf("after the revert: %v", err)
		}
	}
}

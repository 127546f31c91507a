package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
)

// specLine returns "PATH:LINE" of the first line of the spec file at path
// that contains s: what a waiting note names.
func specLine(t *testing.T, path, s string) string {
	t.Helper()
	for i, l := range strings.Split(readFile(t, path), "\n") {
		if strings.Contains(l, s) {
			return path + ":" + strconv.Itoa(i+1)
		}
	}
	t.Fatalf("%s has no line with %q", path, s)
	return ""
}

// owned returns the ownership record of the box, as text.
func (b *box) owned() string {
	b.t.Helper()
	s, err := os.ReadFile(filepath.Join(b.stateDir, b.ns, "owned.json"))
	if err != nil && !os.IsNotExist(err) {
		b.t.Fatal(err)
	}
	return string(s)
}

// waitingNotes returns the waiting notes of a status.
func waitingNotes(st reconcile.Status) []string {
	var out []string
	for _, n := range st.Notes {
		if n.Waiting {
			out = append(out, n.String())
		}
	}
	return out
}

// The CLI with an uplink's link missing (a 4G modem not plugged in):
// plan and apply never fail on it; they converge the rest and say what
// waits, naming the spec line. When the link appears, apply configures
// it; when it goes, apply forgets what braid made on it without a failed
// delete, and destroy restores the box. A missing LAN link waits too.
func TestCLIWaitsForAMissingLink(t *testing.T) {
	b := newBox(t)
	spec := writeSpec(t, labSpec)
	mac := func() string {
		var links []struct {
			Address string `json:"address"`
		}
		json.Unmarshal([]byte(b.ip("-j", "link", "show", "dev", "wan2")), &links)
		return links[0].Address
	}()
	pristine := b.snapshot()
	unplug := func() { b.ip("link", "del", "dev", "wan2") }
	plug := func() {
		nstest := func(args ...string) {
			t.Helper()
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %v: %v %s", args, err, out)
			}
		}
		nstest("-n", b.ns, "link", "add", "wan2", "address", mac, "type", "veth", "peer", "name", "wan2p", "netns", b.far)
		nstest("-n", b.ns, "link", "set", "wan2", "addrgenmode", "none")
		nstest("-n", b.far, "link", "set", "wan2p", "addrgenmode", "none")
		nstest("-n", b.far, "link", "set", "wan2p", "up")
	}
	where := specLine(t, spec, "interface: wan2")
	note := "uplinks[1]: waiting: link wan2 (" + where + "): uplink isp2 is configured when the link appears"

	unplug()
	r := b.must(2, "plan", "-f", spec)
	if !strings.Contains(r.stdout, "Waiting (not changes):\n  * "+note) || !strings.Contains(r.stdout, "+ route[main 0.0.0.0/0 metric 10]") ||
		strings.Contains(r.stdout, "wan2]") {
		t.Errorf("plan with wan2 missing:\n%s", r.stdout)
	}
	r = b.must(2, "plan", "-f", spec, "--json")
	var doc reconcile.PlanDocument
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(doc.Notes, func(n plan.Note) bool { return n.Waiting && n.Section == "uplinks[1]" }) {
		t.Errorf("plan --json notes: %+v", doc.Notes)
	}
	r = b.must(0, "apply", "-f", spec)
	if !strings.Contains(r.stdout, note) || !strings.Contains(r.stdout, "Verified") {
		t.Errorf("apply with wan2 missing:\n%s", r.stdout)
	}
	if got := b.ip("-4", "route", "show", "default"); !strings.Contains(got, "via 10.101.0.1 dev wan1") || strings.Contains(got, "wan2") {
		t.Errorf("default routes:\n%s", got)
	}
	r = b.must(0, "plan", "-f", spec)
	if !strings.Contains(r.stdout, note) || !strings.Contains(r.stdout, "No changes.") {
		t.Errorf("plan after apply:\n%s", r.stdout)
	}

	// Plugged in: one apply configures it.
	plug()
	r = b.must(2, "plan", "-f", spec)
	if !strings.Contains(r.stdout, "~ link[wan2]  up: false -> true") || !strings.Contains(r.stdout, "+ route[main 0.0.0.0/0 metric 20]") || strings.Contains(r.stdout, "waiting") {
		t.Errorf("plan with wan2 back:\n%s", r.stdout)
	}
	b.must(0, "apply", "-f", spec)
	if got := b.ip("-4", "route", "show", "default"); !strings.Contains(got, "via 10.102.0.1 dev wan2 proto 98 metric 20") {
		t.Errorf("default routes with wan2 back:\n%s", got)
	}

	// Unplugged again: the kernel took its addresses and routes; braid
	// forgets them, and removes what the kernel left (the rules from its
	// addresses, its MPTCP endpoints).
	unplug()
	r = b.must(2, "plan", "-f", spec)
	if !strings.Contains(r.stdout, "- rule[inet pref 7200 from 10.102.0.2/32]") || !strings.Contains(r.stdout, "- mptcp.endpoint[10.102.0.2]") ||
		strings.Contains(r.stdout, "- address[") || strings.Contains(r.stdout, "- route[") || !strings.Contains(r.stdout, note) {
		t.Errorf("plan after the link went:\n%s", r.stdout)
	}
	b.must(0, "apply", "-f", spec)
	if rec := b.owned(); strings.Contains(rec, "wan2") {
		t.Errorf("the ownership record still holds wan2's objects:\n%s", rec)
	}
	b.must(0, "plan", "-f", spec)
	r = b.must(0, "destroy", "--yes")
	if !strings.Contains(r.stdout, "Verified") {
		t.Errorf("destroy:\n%s", r.stdout)
	}
	plug()
	if after := b.snapshot(); after != pristine {
		t.Errorf("destroy did not restore the box:\n%s", diffLines(pristine, after))
	}

	// A missing LAN link waits too; the uplinks converge.
	b.ip("link", "del", "dev", "lan0")
	r = b.must(2, "plan", "-f", spec)
	if want := "lan: waiting: link lan0 (" + specLine(t, spec, "interface: lan0") + ")"; !strings.Contains(r.stdout, want) {
		t.Errorf("plan with lan0 missing lacks %q:\n%s", want, r.stdout)
	}
	b.must(0, "apply", "-f", spec)
	b.must(0, "destroy", "--yes")
}

// labFault runs `braid lab fault` on lab l.
func labFault(t *testing.T, l *lab.Lab, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, braidBin, append([]string{"lab", "fault", "--name", l.Name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("braid lab fault %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The daemon started with an uplink's link unplugged (`braid lab fault
// isp2 unplug`) converges everything else: the LAN reaches the Internet
// through the other uplink's NAT, and status says what waits and where
// the spec names it; the uplink's session waits for the link. Plugged in,
// the link is configured by one pass; unplugged, its default routes leave,
// status says it waits, no pass fails, and the ownership record holds
// nothing of it. destroy afterwards restores the box.
func TestRunWaitsForAnUnpluggedUplink(t *testing.T) {
	l := labtest.New(t)
	b := labBoxOf(t, l)
	b.standIns(t)
	spec := writeSpec(t, strings.Replace(readFile(t, "../../specs/lab.yaml"), "    priority: 20\n",
		"    priority: 20\n    health: {probes: [{icmp: "+lab.ServerV4+"}]}\n", 1))
	pristine := b.snapshot()
	note := "uplinks[1]: waiting: link wan2 (" + specLine(t, spec, "interface: wan2") + "): uplink isp2 is configured when the link appears"

	if out := labFault(t, l, "isp2", "unplug"); !strings.Contains(out, "isp2 unplug") {
		t.Errorf("lab fault: %s", out)
	}
	out, err := exec.Command(braidBin, "lab", "status", "--name", l.Name).CombinedOutput()
	if err != nil || !regexp.MustCompile(`unplug\s+isp2`).MatchString(string(out)) {
		t.Errorf("lab status does not show the fault: %v\n%s", err, out)
	}
	// The CLI plans it as the daemon will.
	if r := b.must(2, "plan", "-f", spec); !strings.Contains(r.stdout, note) {
		t.Errorf("plan:\n%s", r.stdout)
	}

	d := b.startDaemon("-f", spec)
	st := d.until("the first pass, waiting for wan2", func(st reconcile.Status) bool {
		h, _ := sessionIn(st, "session[health/isp2]")
		return converged(st) && slices.Contains(waitingNotes(st), note) && h.State == session.Waiting && h.Detail == "link wan2"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if seen, err := l.Whoami(ctx, lab.RoleLAN, "tcp", lab.ServerV4+":7", ""); err != nil || seen.Addr().String() != lab.BoxWAN1V4 {
		t.Errorf("the LAN reached the server from %v (%v), want isp1's NAT address %s", seen, err, lab.BoxWAN1V4)
	}
	if got := b.ip("-4", "route", "show", "default"); !strings.Contains(got, "via 10.101.0.1 dev wan1") || strings.Contains(got, "wan2") {
		t.Errorf("default routes:\n%s", got)
	}
	if out := nstestNft(t, b.ns); !strings.Contains(out, `oifname "wan1" ip saddr 192.168.50.0/24 masquerade`) {
		t.Errorf("no NAT out of wan1:\n%s", out)
	}
	if r := b.must(0, "status"); !strings.Contains(r.stdout, note) {
		t.Errorf("status text lacks the waiting note:\n%s", r.stdout)
	}

	// Plugged in: the pass that follows configures it.
	applying := st.Applying
	labFault(t, l, "isp2", "plug")
	st = d.until("wan2 configured", func(st reconcile.Status) bool {
		return converged(st) && len(waitingNotes(st)) == 0 &&
			strings.Contains(b.ip("-4", "route", "show", "default"), "via 10.102.0.1 dev wan2 proto 98 metric 20")
	})
	d.until("the health session started", func(st reconcile.Status) bool {
		h, _ := sessionIn(st, "session[health/isp2]")
		return h.Detail != "link wan2" && h.State != session.Stopped
	})
	b.must(0, "plan", "-f", spec)
	if st.Applying != applying+1 || st.Repairs != 0 {
		t.Errorf("configuring wan2 took %d applying passes (want 1), %d counted as drift repairs (want none)", st.Applying-applying, st.Repairs)
	}
	if seen, err := l.Whoami(ctx, lab.RoleBox, "tcp", lab.ServerV4+":7", lab.BoxWAN2V4); err != nil || seen.Addr().String() != lab.BoxWAN2V4 {
		t.Errorf("out of wan2: %v %v", seen, err)
	}

	// Unplugged while the daemon runs.
	labFault(t, l, "isp2", "unplug")
	st = d.until("wan2 forgotten", func(st reconcile.Status) bool {
		return converged(st) && slices.Contains(waitingNotes(st), note) &&
			!strings.Contains(b.ip("-4", "route", "show", "default"), "wan2") && !strings.Contains(b.ip("-6", "route", "show", "default"), "wan2")
	})
	if r := b.braid(nil, "plan", "-f", spec); r.code != 0 || !strings.Contains(r.stdout, note) {
		t.Errorf("plan while the daemon runs: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if rec := b.owned(); strings.Contains(rec, "wan2") || strings.Contains(rec, "10.102.0.2") {
		t.Errorf("the ownership record still holds wan2's objects:\n%s", rec)
	}
	if got := b.ip("mptcp", "endpoint", "show"); strings.Contains(got, "10.102.0.2") {
		t.Errorf("wan2's MPTCP endpoint stayed:\n%s", got)
	}
	if st.Failures != 0 || st.Repairs != 0 {
		t.Errorf("%d passes failed, %d repaired drift (want none); last: %+v", st.Failures, st.Repairs, st.LastPass)
	}
	d.stop(syscall.SIGTERM)
	b.must(0, "destroy", "--yes")
	labFault(t, l, "isp2", "plug")
	if after := b.snapshot(); after != pristine {
		t.Errorf("destroy did not restore the box:\n%s", diffLines(pristine, after))
	}
}

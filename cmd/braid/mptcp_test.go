package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
)

// mptcpState is the namespace's MPTCP state as ip(8) and /proc/sys report
// it: endpoints (with their ids), limits, and the net.mptcp sysctls braid
// sets.
func (b *box) mptcpState() string {
	b.t.Helper()
	var out strings.Builder
	out.WriteString(normalizeJSON(b.t, b.ip("-j", "mptcp", "endpoint", "show")) + "\n")
	out.WriteString(strings.Join(strings.Fields(b.ip("mptcp", "limits", "show")), " ") + "\n")
	for _, s := range []string{"net/mptcp/enabled", "net/mptcp/pm_type"} {
		out.WriteString(s + "=" + nstest.In(b.t, b.ns, "cat", "/proc/sys/"+s))
	}
	return out.String()
}

// planDocument is the part of `braid plan --json` these tests read.
type planDocument struct {
	Changes []struct {
		Action  string            `json:"action"`
		Address string            `json:"address"`
		After   map[string]string `json:"after"`
	} `json:"changes"`
}

// ipEndpoints lists `ip -j mptcp endpoint show` as "ADDR dev=DEV flags=..."
// lines in the plan's words, sorted.
func (b *box) ipEndpoints() []string {
	b.t.Helper()
	var eps []map[string]any
	if err := json.Unmarshal([]byte(b.ip("-j", "mptcp", "endpoint", "show")), &eps); err != nil {
		b.t.Fatal(err)
	}
	var out []string
	for _, e := range eps {
		var flags []string
		for _, f := range []string{"signal", "subflow", "backup", "fullmesh", "implicit"} {
			if e[f] == true {
				flags = append(flags, f)
			}
		}
		dev, _ := e["dev"].(string)
		out = append(out, fmt.Sprintf("%v dev=%s flags=%s", e["address"], dev, strings.Join(flags, " ")))
	}
	slices.Sort(out)
	return out
}

// Presets other than braid's (limits, net.mptcp.enabled, the path manager)
// and a foreign endpoint: apply gives what the plan said, ip(8) agrees, a
// no-op apply writes nothing, destroy restores the presets, and the foreign
// endpoint is never touched.
func TestMPTCPApplyAgreesWithPlanAndDestroyRestores(t *testing.T) {
	b := newBox(t)
	b.ip("mptcp", "limits", "set", "subflows", "5", "add_addr_accepted", "7")
	nstest.In(t, b.ns, "sysctl", "-qw", "net.mptcp.enabled=0", "net.mptcp.pm_type=1")
	b.ip("mptcp", "endpoint", "add", "192.0.2.7", "id", "9", "dev", "lan0", "signal")
	b.ip("mptcp", "endpoint", "add", "198.51.100.7", "id", "1", "dev", "wan2", "subflow", "backup")
	before := b.mptcpState()
	foreign := b.ipEndpoints()
	spec := writeSpec(t, labSpec)

	var doc planDocument
	if err := json.Unmarshal([]byte(b.must(2, "plan", "-f", spec, "--json").stdout), &doc); err != nil {
		t.Fatal(err)
	}
	wantEps := slices.Clone(foreign)
	var wantLimits string
	sysctls := map[string]string{}
	for _, c := range doc.Changes {
		switch {
		case strings.HasPrefix(c.Address, "mptcp.endpoint["):
			if c.Action != "create" {
				t.Errorf("%s: %s, want create", c.Address, c.Action)
			}
			addr := strings.TrimSuffix(strings.TrimPrefix(c.Address, "mptcp.endpoint["), "]")
			wantEps = append(wantEps, fmt.Sprintf("%s dev=%s flags=%s", addr, c.After["dev"], c.After["flags"]))
		case c.Address == "mptcp.limits":
			wantLimits = "add_addr_accepted " + c.After["add_addr_accepted"] + " subflows " + c.After["subflows"]
		case strings.HasPrefix(c.Address, "sysctl[net.mptcp."):
			sysctls[strings.TrimSuffix(strings.TrimPrefix(c.Address, "sysctl["), "]")] = c.After["value"]
		}
	}
	slices.Sort(wantEps)
	if len(wantEps) != len(foreign)+4 || wantLimits != "add_addr_accepted 2 subflows 3" ||
		sysctls["net.mptcp.enabled"] != "1" || sysctls["net.mptcp.pm_type"] != "0" {
		t.Fatalf("plan: endpoints %q, limits %q, sysctls %v", wantEps, wantLimits, sysctls)
	}

	b.must(0, "apply", "-f", spec)
	if got := b.ipEndpoints(); !slices.Equal(got, wantEps) {
		t.Errorf("ip mptcp endpoint show:\n%s\nthe plan said:\n%s", strings.Join(got, "\n"), strings.Join(wantEps, "\n"))
	}
	if got := strings.Join(strings.Fields(b.ip("mptcp", "limits", "show")), " "); got != wantLimits {
		t.Errorf("ip mptcp limits show: %q, the plan said %q", got, wantLimits)
	}
	for name, want := range sysctls {
		if got := strings.TrimSpace(nstest.In(t, b.ns, "sysctl", "-n", name)); got != want {
			t.Errorf("%s = %s, the plan said %s", name, got, want)
		}
	}
	// braid's endpoints took ids the foreign ones do not use.
	r := b.must(0, "show")
	for _, want := range []string{"mptcp.limits subflows=3 add_addr_accepted=2", "mptcp.endpoint[10.101.0.2] dev=wan1 flags=subflow"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "192.0.2.7") || strings.Contains(r.stdout, "198.51.100.7") {
		t.Errorf("show lists a foreign endpoint:\n%s", r.stdout)
	}

	// Converged: a plan is empty, and an apply with a failpoint at its
	// first kernel write does not fire.
	if r := b.must(0, "plan", "-f", spec); !strings.Contains(r.stdout, "No changes.") {
		t.Errorf("plan after apply:\n%s", r.stdout)
	}
	if r := b.braid([]string{"BRAID_FAILPOINT_WRITES=1"}, "apply", "-f", spec); r.code != 0 {
		t.Errorf("a no-op apply wrote to the kernel: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	b.must(0, "destroy", "--yes")
	if after := b.mptcpState(); after != before {
		t.Errorf("destroy did not restore the MPTCP state:\n%s", diffLines(before, after))
	}
	if got := b.ipEndpoints(); !slices.Equal(got, foreign) {
		t.Errorf("foreign endpoints after destroy: %q, want %q", got, foreign)
	}
}

// A foreign endpoint at an address braid wants is a conflict: left alone,
// named, and everything else applied.
func TestMPTCPConflictWithForeignEndpoint(t *testing.T) {
	b := newBox(t)
	b.ip("mptcp", "endpoint", "add", "10.102.0.2", "id", "7", "dev", "wan2", "signal")
	spec := writeSpec(t, labSpec)
	r := b.must(1, "plan", "-f", spec)
	if !strings.Contains(r.stdout, "! mptcp.endpoint[10.102.0.2]: occupied by a foreign object (id=7 dev=wan2 flags=signal)") {
		t.Errorf("plan does not show the conflict:\n%s", r.stdout)
	}
	r = b.must(1, "apply", "-f", spec)
	if !strings.Contains(r.stderr, "mptcp.endpoint[10.102.0.2]") {
		t.Errorf("apply does not name the conflict:\n%s", r.stderr)
	}
	if r := b.must(1, "plan", "-f", spec); !strings.Contains(r.stdout, "No changes.") {
		t.Errorf("the rest was not applied:\n%s", r.stdout)
	}
	b.must(0, "destroy", "--yes")
	if got := b.ipEndpoints(); !slices.Equal(got, []string{"10.102.0.2 dev=wan2 flags=signal"}) {
		t.Errorf("endpoints after destroy: %q", got)
	}
}

// Spec changes: a mode change is an in-place update, an address change
// moves the endpoint, and mode off everywhere removes braid's endpoints and
// restores the limits.
func TestMPTCPSpecChanges(t *testing.T) {
	b := newBox(t)
	pristine := b.mptcpState()
	b.must(0, "apply", "-f", writeSpec(t, labSpec))
	changed := strings.Replace(labSpec, "    priority: 20\n", "    priority: 20\n    mptcp: {mode: backup, fullmesh: true}\n", 1)
	// (IPv6: removing an IPv4 primary address takes the secondaries of
	// its subnet along.)
	changed = strings.Replace(changed, "2001:db8:101::2/64", "2001:db8:101::3/64", 1)
	spec := writeSpec(t, changed)
	r := b.must(2, "plan", "-f", spec)
	for _, want := range []string{
		"~ mptcp.limits  subflows: 3 -> 8",
		"~ mptcp.endpoint[10.102.0.2]  flags: subflow -> subflow backup fullmesh",
		"+ mptcp.endpoint[2001:db8:101::3]  dev=wan1 flags=subflow",
		"- mptcp.endpoint[2001:db8:101::2]  dev=wan1 flags=subflow",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan lacks %q:\n%s", want, r.stdout)
		}
	}
	b.must(0, "apply", "-f", spec)
	got := strings.Join(b.ipEndpoints(), "\n")
	for _, want := range []string{"2001:db8:101::3 dev=wan1 flags=subflow", "10.102.0.2 dev=wan2 flags=subflow backup fullmesh"} {
		if !strings.Contains(got, want) {
			t.Errorf("endpoints lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "2001:db8:101::2 ") {
		t.Errorf("the old address's endpoint is still there:\n%s", got)
	}
	off := strings.ReplaceAll(labSpec, "    priority: ", "    mptcp: {mode: off}\n    priority: ")
	b.must(0, "apply", "-f", writeSpec(t, off))
	if after := b.mptcpState(); after != pristine {
		t.Errorf("mode off everywhere did not restore the MPTCP state:\n%s", diffLines(pristine, after))
	}
}

// A crash right after any kernel write of an apply or a destroy, then a
// new run, gives the same MPTCP state as an uninterrupted one: the record
// names every endpoint and the limits braid changed.
func TestMPTCPCrashMidApplyThenConverge(t *testing.T) {
	b := newBox(t)
	b.ip("mptcp", "limits", "set", "subflows", "5", "add_addr_accepted", "7")
	nstest.In(t, b.ns, "sysctl", "-qw", "net.mptcp.enabled=0")
	spec := writeSpec(t, labSpec)
	pristine := b.mptcpState()
	b.must(0, "apply", "-f", spec)
	converged := b.mptcpState()
	b.must(0, "destroy", "--yes")
	var doc planDocument
	if err := json.Unmarshal([]byte(b.must(2, "plan", "-f", spec, "--json").stdout), &doc); err != nil {
		t.Fatal(err)
	}
	// Every change is one write; the MPTCP ones come last.
	total := len(doc.Changes)
	first := total
	for i, c := range doc.Changes {
		if strings.HasPrefix(c.Address, "mptcp.") || strings.HasPrefix(c.Address, "sysctl[net.mptcp.") {
			first = min(first, i+1)
		}
	}
	if total-first < 5 {
		t.Fatalf("the plan has %d changes, the first MPTCP one at %d", total, first)
	}
	b.crashEachWrite(spec, first, total, b.mptcpState, pristine, converged)
}

// TestMPTCPInTheLab: specs/lab.yaml in a lab's box gives a Go MPTCP client
// one subflow per uplink to a listener on the peer, each from that uplink's
// address, over IPv4 and IPv6; both ISPs carry its bytes; when one uplink
// goes down, bytes keep arriving over the other.
func TestMPTCPInTheLab(t *testing.T) {
	l := labtest.New(t)
	box, peer := l.NS(lab.RoleBox), l.NS(lab.RolePeer)
	isp1, isp2 := l.NS(lab.RoleISP1), l.NS(lab.RoleISP2)
	// The peer accepts subflows (a real peer's spec will set this).
	nstest.Run(t, "ip", "-n", peer, "mptcp", "limits", "set", "subflows", "8", "add_addr_accepted", "8")
	b := labBoxOf(t, l)
	run := func(args ...string) { t.Helper(); b.must(0, args...) }
	run("apply", "-f", "../../specs/lab.yaml")
	if got := nstest.Run(t, "ip", "-n", box, "mptcp", "limits", "show"); !strings.Contains(got, "add_addr_accepted 2 subflows 3") {
		t.Errorf("box limits: %s", got)
	}

	for _, c := range []struct {
		family string
		server netip.Addr
		locals []netip.Addr // wan1's, then wan2's
	}{
		{"IPv4", netip.MustParseAddr(lab.PeerV4), []netip.Addr{netip.MustParseAddr(lab.BoxWAN1V4), netip.MustParseAddr(lab.BoxWAN2V4)}},
		{"IPv6", netip.MustParseAddr(lab.PeerV6), []netip.Addr{netip.MustParseAddr(lab.BoxWAN1V6), netip.MustParseAddr(lab.BoxWAN2V6)}},
	} {
		t.Run(c.family, func(t *testing.T) {
			addr := netip.AddrPortFrom(c.server, 5001).String()
			s := listenMPTCP(t, peer, addr)
			conn := dialMPTCP(t, box, addr)
			pump(t, conn)

			// One subflow per uplink, each from the uplink's address, to
			// the peer.
			var got []subflow
			if !waitFor(30*time.Second, func() bool {
				got, _ = subflows(conn)
				return len(got) == 2
			}) {
				t.Fatalf("subflows %v, want one per uplink\n%s", got, ssSubflows(box))
			}
			for i, sf := range got {
				if sf.Local.Addr() != c.locals[i] || sf.Remote.Addr() != c.server {
					t.Errorf("subflow %d: %s -> %s, want %s -> %s", i, sf.Local, sf.Remote, c.locals[i], c.server)
				}
			}
			// Both ISPs carry the connection's bytes.
			rx1, rx2 := rxBytes(t, isp1, lab.ISPDownDev), rxBytes(t, isp2, lab.ISPDownDev)
			const enough = 256 << 10
			if !waitFor(30*time.Second, func() bool {
				return rxBytes(t, isp1, lab.ISPDownDev)-rx1 > enough && rxBytes(t, isp2, lab.ISPDownDev)-rx2 > enough
			}) {
				t.Fatalf("ISP counters rose by %d (isp1) and %d (isp2) bytes, want both over %d\n%s",
					rxBytes(t, isp1, lab.ISPDownDev)-rx1, rxBytes(t, isp2, lab.ISPDownDev)-rx2, enough, ssSubflows(box))
			}
			// The peer reads what both carried (its count lags the wire
			// by what its socket buffers hold).
			if !waitFor(30*time.Second, func() bool { return s.received.Load() >= 2*enough }) {
				t.Errorf("the peer received only %d bytes", s.received.Load())
			}
		})
	}

	// Failover: isp1's side of wan1 goes down; the connection keeps
	// delivering over isp2.
	addr := netip.AddrPortFrom(netip.MustParseAddr(lab.PeerV4), 5002).String()
	s := listenMPTCP(t, peer, addr)
	conn := dialMPTCP(t, box, addr)
	stop := pump(t, conn)
	if !waitFor(30*time.Second, func() bool { sf, _ := subflows(conn); return len(sf) == 2 }) {
		t.Fatalf("no second subflow before the failover\n%s", ssSubflows(box))
	}
	if !waitFor(30*time.Second, func() bool { return s.received.Load() > 1<<20 }) {
		t.Fatalf("only %d bytes arrived before the failover", s.received.Load())
	}
	t.Logf("%s: isp1 goes down", time.Now().Format("15:04:05.000"))
	if err := l.Inject(context.Background(), lab.Fault{ISP: lab.RoleISP1, Kind: lab.FaultDown}); err != nil {
		t.Fatal(err)
	}
	// The connection carries on, all of it through isp2 now: the peer
	// keeps receiving, and isp2 carries at least as much again. (Nothing
	// is compared with the peer's count at an instant: it lags the wire by
	// what the sockets buffer, more so on a busy machine.)
	cut, rx2 := s.received.Load(), rxBytes(t, isp2, lab.ISPDownDev)
	const after = 2 << 20
	if !waitFor(30*time.Second, func() bool {
		return s.received.Load()-cut > after && rxBytes(t, isp2, lab.ISPDownDev)-rx2 > after
	}) {
		t.Fatalf("after isp1 went down, the peer received %d bytes and isp2 carried %d in 30 s, want both over %d\n%s",
			s.received.Load()-cut, rxBytes(t, isp2, lab.ISPDownDev)-rx2, after, ssSubflows(box))
	}
	stop()
	conn.Close()
	s.close()
	t.Logf("%s: destroy", time.Now().Format("15:04:05.000"))

	run("destroy", "--yes")
	if got := nstest.Run(t, "ip", "-n", box, "mptcp", "endpoint", "show"); strings.TrimSpace(got) != "" {
		t.Errorf("endpoints after destroy:\n%s", got)
	}
}

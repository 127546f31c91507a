package ra

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/internal/sessiontest"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/ra/autoconf"
)

// deadline bounds every wait on a condition: the suite runs on a busy
// machine, so it is a bound on a hang, not a measurement.
const deadline = 60 * time.Second

var (
	prefix   = netip.MustParsePrefix("2001:db8:102::/64")
	resolver = netip.MustParseAddr("2001:db8:102::53")
)

// radvdConf is radvd's configuration on the router's link: a default
// router for 30 minutes, the prefix for an hour (SLAAC), a resolver.
func radvdConf(routerLifetime int) string {
	return fmt.Sprintf(`interface down {
  AdvSendAdvert on;
  MinRtrAdvInterval 10;
  MaxRtrAdvInterval 30;
  AdvDefaultLifetime %d;
  prefix %s {
    AdvOnLink on;
    AdvAutonomous on;
    AdvValidLifetime 3600;
    AdvPreferredLifetime 1800;
  };
  RDNSS %s {
    AdvRDNSSLifetime 600;
  };
};
`, routerLifetime, prefix, resolver)
}

// rig is a box with an uplink wan2 to a router namespace whose link
// "down" runs radvd, unmodified.
type rig struct {
	t        *testing.T
	box, rtr string
	conf     string
	radvd    *exec.Cmd
	radvdLog *nstest.SyncBuffer
	// routerLL is the router's link-local address.
	routerLL netip.Addr
	hub      *facts.Hub
	key      []byte
	idFile   string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.RequireBinary(t, "radvd")
	r := &rig{t: t, box: nstest.New(t), rtr: nstest.New(t)}
	nstest.Run(t, "ip", "-n", r.rtr, "link", "add", "name", "down", "type", "veth", "peer", "name", "wan2", "netns", r.box)
	// braid's compile turns the kernel's accept_ra off on an RA uplink;
	// the session alone does not, so the test does.
	nstest.In(t, r.box, "sysctl", "-qw", "net.ipv6.conf.wan2.accept_ra=0")
	nstest.In(t, r.rtr, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	nstest.Run(t, "ip", "-n", r.rtr, "addr", "add", "2001:db8:102::1/64", "dev", "down", "nodad")
	nstest.Run(t, "ip", "-n", r.rtr, "link", "set", "dev", "down", "up")
	nstest.Run(t, "ip", "-n", r.box, "link", "set", "wan2", "up")
	r.routerLL = linkLocal(t, r.rtr, "down")
	dir := t.TempDir()
	r.conf = filepath.Join(dir, "radvd.conf")
	r.writeConf(radvdConf(1800))
	r.radvdLog = &nstest.SyncBuffer{}
	r.radvd = exec.Command("ip", "netns", "exec", r.rtr, "radvd", "--nodaemon", "--config", r.conf,
		"--pidfile", filepath.Join(dir, "radvd.pid"), "--logmethod", "stderr")
	r.radvd.Stdout, r.radvd.Stderr = r.radvdLog, r.radvdLog
	if err := r.radvd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.radvd.Process.Signal(syscall.SIGTERM)
		r.radvd.Wait()
		if t.Failed() {
			t.Logf("radvd:\n%s", r.radvdLog)
		}
	})
	r.idFile = filepath.Join(dir, "machine-id")
	if err := os.WriteFile(r.idFile, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	if r.key, err = SecretKey(r.idFile); err != nil {
		t.Fatal(err)
	}
	if r.hub, err = facts.Open(facts.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.hub.Close)
	return r
}

func (r *rig) writeConf(conf string) {
	r.t.Helper()
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// reload makes radvd read its configuration again, which it follows with
// an advert.
func (r *rig) reload(conf string) {
	r.t.Helper()
	r.writeConf(conf)
	if err := r.radvd.Process.Signal(syscall.SIGHUP); err != nil {
		r.t.Fatal(err)
	}
}

// addr is the address RFC 7217 forms in the prefix on wan2 with the rig's
// key and DAD counter.
func (r *rig) addr(counter uint8) netip.Prefix {
	a, _ := autoconf.StableAddress(prefix, "wan2", counter, r.key)
	return netip.PrefixFrom(a, 64)
}

// linkLocal returns the kernel's link-local address of dev in ns, once
// it has one.
func linkLocal(t *testing.T, ns, dev string) netip.Addr {
	t.Helper()
	var addr netip.Addr
	waitFor(t, "a link-local address on "+dev, func() bool {
		var links []struct {
			AddrInfo []struct {
				Local string `json:"local"`
				Scope string `json:"scope"`
			} `json:"addr_info"`
		}
		out := nstest.Run(t, "ip", "-n", ns, "-j", "-6", "addr", "show", "dev", dev)
		if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) == 0 {
			return false
		}
		for _, a := range links[0].AddrInfo {
			if a.Scope == "link" {
				addr = netip.MustParseAddr(a.Local)
				return true
			}
		}
		return false
	})
	return addr
}

// waitFor polls cond until it holds, failing the test after deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	sessiontest.WaitFor(t, what, deadline, cond)
}

// start runs the session in the box's namespace until stopped.
func (r *rig) start(c *Client) *sessiontest.Run {
	r.t.Helper()
	return sessiontest.Start(r.t, r.box, "ra/isp2", r.hub, func(ctx context.Context, env *session.Env) error {
		return c.Run(ctx, Config{Uplink: "isp2", Interface: "wan2"}, env)
	})
}

// learnt waits until the hub's facts satisfy cond, and returns them.
func (r *rig) learnt(what string, cond func(a *facts.SLAAC, rt *facts.Router6, s facts.Set) bool) facts.Set {
	r.t.Helper()
	var set facts.Set
	waitFor(r.t, what, func() bool {
		set = r.hub.Set()
		var a *facts.SLAAC
		var rt *facts.Router6
		if v, ok := set.SLAAC("isp2"); ok {
			a = &v
		}
		if v, ok := set.Router6("isp2"); ok {
			rt = &v
		}
		return cond(a, rt, set)
	})
	return set
}

// capture is tshark capturing ICMPv6 on the box's wan2.
func (r *rig) capture() *nstest.Capture {
	r.t.Helper()
	return nstest.StartCapture(r.t, r.box, "wan2", "icmp6")
}

// The session learns the address, the default router and the resolver
// from radvd; a router lifetime of zero takes the router away and leaves
// the address; what braid sends is what RFC 4861 and 4862 say, as tshark
// reads it; a restart keeps the address without checking it again.
func TestSessionLearnsFromRadvd(t *testing.T) {
	r := newRig(t)
	cap := r.capture()
	s := r.start(&Client{MachineIDFile: r.idFile})
	before := time.Now()
	want := r.addr(0)
	set := r.learnt("address, router and resolver", func(a *facts.SLAAC, rt *facts.Router6, _ facts.Set) bool {
		return a != nil && rt != nil && len(a.DNS) > 0
	})
	a, _ := set.SLAAC("isp2")
	rt, _ := set.Router6("isp2")
	if a.Address != want || a.Link != "wan2" {
		t.Errorf("address %s on %s, want RFC 7217's %s on wan2", a.Address, a.Link, want)
	}
	if len(a.DNS) != 1 || a.DNS[0].Addr != resolver || a.DNS[0].Expires.Before(before.Add(599*time.Second)) {
		t.Errorf("resolvers %+v, want %s for 600 s", a.DNS, resolver)
	}
	if rt.Router != r.routerLL || rt.Link != "wan2" {
		t.Errorf("router %s on %s, want %s on wan2", rt.Router, rt.Link, r.routerLL)
	}
	var addrFact, routerFact facts.Entry
	for _, e := range set.Entries() {
		switch e.Kind {
		case "slaac":
			addrFact = e
		case "router6":
			routerFact = e
		}
	}
	if d := addrFact.Expires.Sub(before); d < 3599*time.Second || d > 3600*time.Second+deadline || addrFact.Process {
		t.Errorf("the address fact expires in %v (process-bound %v), want the valid lifetime, 1 h, surviving a restart", d, addrFact.Process)
	}
	if d := routerFact.Expires.Sub(before); d < 1799*time.Second || d > 1800*time.Second+deadline || routerFact.Process {
		t.Errorf("the router fact expires in %v, want the router lifetime, 30 min", d)
	}
	if !a.Preferred.After(before.Add(1799 * time.Second)) {
		t.Errorf("preferred until %v, want 30 min", a.Preferred)
	}
	st, detail := s.Status()
	for _, w := range []string{want.String(), r.routerLL.String() + "%wan2", resolver.String(), "valid until", "preferred until"} {
		if st != session.Running || !strings.Contains(detail, w) {
			t.Errorf("status %s %q lacks %q", st, detail, w)
		}
	}
	// accept_ra is off: the kernel made nothing of the adverts.
	if out := nstest.Run(t, "ip", "-n", r.box, "-6", "route", "show", "table", "all", "proto", "ra"); out != "" {
		t.Errorf("the kernel took routes from the adverts:\n%s", out)
	}

	// A router lifetime of zero: the router goes, the address and the
	// resolver stay.
	r.reload(radvdConf(0))
	set = r.learnt("the router gone", func(a *facts.SLAAC, rt *facts.Router6, _ facts.Set) bool { return rt == nil })
	if a2, ok := set.SLAAC("isp2"); !ok || a2.Address != want || len(a2.DNS) != 1 {
		t.Errorf("after a router lifetime of zero: %+v %v, want the address and resolver kept", a2, ok)
	}
	r.reload(radvdConf(1800))
	r.learnt("the router back", func(a *facts.SLAAC, rt *facts.Router6, _ facts.Set) bool { return rt != nil && a != nil })

	// What braid sent, as tshark reads it.
	s.Stop(t, session.ErrShutdown)
	cap.Stop()
	mac := boxMAC(t, r.box)
	boxLL := linkLocal(t, r.box, "wan2")
	rs := cap.Fields("icmpv6.type == 133", "ipv6.src", "ipv6.dst", "ipv6.hlim", "icmpv6.code", "icmpv6.checksum.status", "icmpv6.opt.linkaddr")
	if len(rs) == 0 {
		t.Error("tshark saw no router solicitation")
	}
	for _, l := range rs {
		if wantRS := strings.Join([]string{boxLL.String(), "ff02::2", "255", "0", "1", mac}, "|"); l != wantRS {
			t.Errorf("router solicitation %s, want %s (src|dst|hop limit|code|checksum good|source link-layer address)", l, wantRS)
		}
	}
	// The kernel probes for its own link-local address too: not braid's.
	ns := cap.Fields("icmpv6.type == 135 && ipv6.src == :: && !(icmpv6.nd.ns.target_address == fe80::/10)", "ipv6.dst", "ipv6.hlim", "icmpv6.code", "icmpv6.checksum.status", "icmpv6.nd.ns.target_address", "icmpv6.opt.type")
	snm := "ff02::1:ff" + want.Addr().StringExpanded()[32:34] + ":" + want.Addr().StringExpanded()[35:39]
	if wantNS := strings.Join([]string{snm, "255", "0", "1", want.Addr().String(), "14"}, "|"); len(ns) != 1 || ns[0] != wantNS {
		t.Errorf("DAD probes %q, want one: %s (dst|hop limit|code|checksum good|target|options: nonce)", ns, wantNS)
	}
	if flagged := cap.Fields("(icmpv6.type == 133 || (icmpv6.type == 135 && ipv6.src == ::)) && _ws.expert && !(icmpv6.nd.ns.target_address == fe80::/10)", "frame.number", "_ws.expert.message"); len(flagged) > 0 {
		t.Errorf("tshark flags what braid sent: %q", flagged)
	}

	// A restart: the address is restored at once, from the facts, and not
	// probed again.
	cap = r.capture()
	version := r.hub.Set().Version
	s = r.start(&Client{MachineIDFile: r.idFile})
	set = r.learnt("a new advert after the restart", func(a *facts.SLAAC, rt *facts.Router6, set facts.Set) bool {
		return set.Version > version && rt != nil && a != nil
	})
	if a2, _ := set.SLAAC("isp2"); a2.Address != want {
		t.Errorf("after a restart: %s, want %s", a2.Address, want)
	}
	s.Stop(t, session.ErrShutdown)
	cap.Stop()
	if ns := cap.Fields("icmpv6.type == 135 && ipv6.src == :: && !(icmpv6.nd.ns.target_address == fe80::/10)", "icmpv6.nd.ns.target_address"); len(ns) != 0 {
		t.Errorf("the restarted session probed again: %q", ns)
	}
}

// boxMAC is wan2's MAC address in the box.
func boxMAC(t *testing.T, ns string) string {
	t.Helper()
	return nstest.MAC(t, ns, "wan2")
}

// An address braid would form that another node holds on the link: its
// DAD probe is answered, and it forms the next RFC 7217 address.
func TestSessionDuplicateAddress(t *testing.T) {
	r := newRig(t)
	taken := r.addr(0)
	nstest.Run(t, "ip", "-n", r.rtr, "addr", "add", taken.String(), "dev", "down", "nodad")
	r.start(&Client{MachineIDFile: r.idFile})
	set := r.learnt("an address", func(a *facts.SLAAC, _ *facts.Router6, _ facts.Set) bool { return a != nil })
	if a, _ := set.SLAAC("isp2"); a.Address != r.addr(1) {
		t.Errorf("address %s, want %s: %s is taken", a.Address, r.addr(1), taken)
	}
}

// A missing link: the session waits, says so, and starts when the link
// comes.
func TestSessionWaitsForTheLink(t *testing.T) {
	nstest.RequireRoot(t)
	r := &rig{t: t, box: nstest.New(t)}
	var err error
	if r.hub, err = facts.Open(facts.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.hub.Close)
	id := filepath.Join(t.TempDir(), "machine-id")
	os.WriteFile(id, []byte("x\n"), 0o600)
	// What the session learnt on another link before the uplink moved to
	// wan2 is withdrawn at start.
	stale := []facts.Fact{
		{SLAAC: &facts.SLAAC{Uplink: "isp2", Link: "eth9", Address: netip.MustParsePrefix("2001:db8:9::1/64")}, Expires: time.Now().Add(time.Hour)},
		{Router6: &facts.Router6{Uplink: "isp2", Link: "eth9", Router: netip.MustParseAddr("fe80::9")}, Expires: time.Now().Add(time.Hour)},
	}
	if err := r.hub.Publish("ra/isp2", stale); err != nil {
		t.Fatal(err)
	}
	s := r.start(&Client{MachineIDFile: id})
	waitFor(t, "waiting for wan2", func() bool {
		st, d := s.Status()
		return st == session.Waiting && strings.Contains(d, "wan2")
	})
	if slots := r.hub.Set().Slots; len(slots) != 0 {
		t.Errorf("facts of eth9 kept on wan2: %+v", slots)
	}
	nstest.Run(t, "ip", "-n", r.box, "link", "add", "wan2", "type", "veth", "peer", "name", "far")
	nstest.Run(t, "ip", "-n", r.box, "link", "set", "far", "up")
	waitFor(t, "wan2 down", func() bool {
		_, d := s.Status()
		return strings.Contains(d, "link wan2 is down")
	})
	nstest.Run(t, "ip", "-n", r.box, "link", "set", "wan2", "up")
	waitFor(t, "running on wan2", func() bool {
		st, d := s.Status()
		return st == session.Running && strings.Contains(d, "soliciting adverts")
	})
	nstest.Run(t, "ip", "-n", r.box, "link", "set", "wan2", "down")
	waitFor(t, "waiting again", func() bool {
		st, _ := s.Status()
		return st == session.Waiting
	})
	if len(r.hub.Set().Slots) != 0 {
		t.Errorf("facts without adverts: %+v", r.hub.Set())
	}
	// No machine ID: the session fails, saying why.
	err = (&Client{MachineIDFile: filepath.Join(t.TempDir(), "none")}).Run(context.Background(), Config{Uplink: "isp2", Interface: "wan2"},
		session.NewEnv("ra/isp2", nil, r.hub, nil))
	if err == nil || !strings.Contains(err.Error(), "secret key") {
		t.Errorf("without a machine ID: %v", err)
	}
}

// A lifetime's end reads as a time of day today, else with its date.
func TestLifetime(t *testing.T) {
	now := time.Now()
	if got := lifetime(time.Time{}); got != "forever" {
		t.Errorf("zero: %q", got)
	}
	tomorrow := now.Add(24 * time.Hour)
	if got, want := lifetime(tomorrow), "until "+tomorrow.Local().Format(time.DateTime); got != want {
		t.Errorf("a day on: %q, want %q", got, want)
	}
	// Within the same day as now, by construction.
	soon := now
	if got, want := lifetime(soon), "until "+soon.Local().Format(time.TimeOnly); got != want {
		t.Errorf("now: %q, want %q", got, want)
	}
}

package advertise

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/internal/sessiontest"
	"github.com/braid-router/braid/session"
)

// deadline bounds every wait on a condition: the suite runs on a busy
// machine, so it is a bound on a hang, not a measurement.
const deadline = 90 * time.Second

var (
	staticPrefix = netip.MustParsePrefix("2001:db8:10::/64")
	delegated    = netip.MustParsePrefix("2001:db8:e000:1201::/64")
	boxAddr      = netip.MustParseAddr("2001:db8:10::1")
)

// rig is a box whose LAN link lan0 is a veth to a host namespace's eth0:
// the host is the Linux kernel as a SLAAC host (accept_ra 2), unmodified.
type rig struct {
	t         *testing.T
	box, host string
	hub       *facts.Hub
}

// newRig makes the namespaces, and the link between them when plugged.
func newRig(t *testing.T, plugged bool) *rig {
	t.Helper()
	nstest.RequireRoot(t)
	r := &rig{t: t, box: nstest.New(t), host: nstest.New(t)}
	nstest.In(t, r.box, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	if plugged {
		r.plug()
	}
	var err error
	if r.hub, err = facts.Open(facts.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.hub.Close)
	return r
}

// plug makes the link between the box and the host, and brings it up.
func (r *rig) plug() {
	t := r.t
	t.Helper()
	nstest.Run(t, "ip", "-n", r.host, "link", "add", "name", "eth0", "type", "veth", "peer", "name", "lan0", "netns", r.box)
	nstest.In(t, r.host, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_ra=2")
	nstest.In(t, r.host, "sysctl", "-qw", "net.ipv6.conf.eth0.autoconf=1")
	nstest.Run(t, "ip", "-n", r.box, "addr", "add", boxAddr.String()+"/64", "dev", "lan0", "nodad")
	nstest.Run(t, "ip", "-n", r.box, "link", "set", "lan0", "up")
	nstest.Run(t, "ip", "-n", r.host, "link", "set", "eth0", "up")
}

// waitFor polls cond until it holds, failing the test after deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	sessiontest.WaitFor(t, what, deadline, cond)
}

// hostAddr is one of the host's IPv6 addresses, as ip -j shows it.
type hostAddr struct {
	Local     string `json:"local"`
	PrefixLen int    `json:"prefixlen"`
	Scope     string `json:"scope"`
	Valid     uint64 `json:"valid_life_time"`
	Preferred uint64 `json:"preferred_life_time"`
	Tentative bool   `json:"tentative"`
	// Deprecated is the kernel's flag: an advert's preferred lifetime
	// of 0, or a preferred lifetime that ran out before the valid one.
	Deprecated bool `json:"deprecated"`
}

// addrs lists the IPv6 addresses of dev in ns.
func addrs(t *testing.T, ns, dev string) []hostAddr {
	t.Helper()
	var links []struct {
		AddrInfo []hostAddr `json:"addr_info"`
	}
	out := nstest.Run(t, "ip", "-n", ns, "-j", "-6", "addr", "show", "dev", dev)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) == 0 {
		t.Fatalf("ip -j addr: %v\n%s", err, out)
	}
	return links[0].AddrInfo
}

// in returns the host's address in p, if it has one.
func (r *rig) in(p netip.Prefix) (hostAddr, bool) {
	for _, a := range addrs(r.t, r.host, "eth0") {
		if ip, err := netip.ParseAddr(a.Local); err == nil && p.Contains(ip) && a.PrefixLen == 64 {
			return a, true
		}
	}
	return hostAddr{}, false
}

// deprecated waits until the host's address in p is deprecated (the
// kernel sets the flag when it next looks at its lifetimes), failing if
// the address goes first.
func (r *rig) deprecated(p netip.Prefix) {
	r.t.Helper()
	waitFor(r.t, "the host's address in "+p.String()+" deprecated", func() bool {
		a, ok := r.in(p)
		if !ok {
			r.t.Fatalf("the host's address in %s went without being deprecated first", p)
		}
		return a.Deprecated && a.Preferred == 0
	})
}

// linkLocal returns the link-local address of dev in ns, once it has one
// that passed duplicate address detection.
func linkLocal(t *testing.T, ns, dev string) netip.Addr {
	t.Helper()
	var ll netip.Addr
	waitFor(t, "a link-local address on "+dev, func() bool {
		for _, a := range addrs(t, ns, dev) {
			if a.Scope == "link" && !a.Tentative {
				ll = netip.MustParseAddr(a.Local)
				return true
			}
		}
		return false
	})
	return ll
}

// defaultVia returns the gateways of the host's IPv6 default routes.
func (r *rig) defaultVia() []string {
	var routes []struct {
		Gateway string `json:"gateway"`
		Dev     string `json:"dev"`
	}
	out := nstest.Run(r.t, "ip", "-n", r.host, "-j", "-6", "route", "show", "default")
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		r.t.Fatalf("ip -j route: %v\n%s", err, out)
	}
	var gws []string
	for _, rt := range routes {
		gws = append(gws, rt.Gateway+"%"+rt.Dev)
	}
	return gws
}

// run is one run of the session in the box, with its server (for
// Update).
type run struct {
	*sessiontest.Run
	srv *Server
}

func (r *rig) start(cfg Config) run {
	r.t.Helper()
	srv := &Server{}
	return run{Run: sessiontest.Start(r.t, r.box, Kind+"/"+Name, r.hub, func(ctx context.Context, env *session.Env) error {
		return srv.Run(ctx, cfg, env)
	}), srv: srv}
}

// capture is tshark capturing ICMPv6 on the box's lan0.
func (r *rig) capture() *nstest.Capture {
	r.t.Helper()
	return nstest.StartCapture(r.t, r.box, "lan0", "icmp6")
}

// saw waits until the capture holds a packet matching the display filter:
// tshark may still hold the last packets when it is stopped.
func saw(t *testing.T, c *nstest.Capture, what, filter string) {
	t.Helper()
	waitFor(t, "tshark to capture "+what, func() bool { return len(c.Fields(filter, "frame.number")) > 0 })
}

// lanConfig advertises the static /64 and a delegated one, braid's
// resolver, an MTU of 1400, the box as default router; adverts every 10
// to 20 s, lifetimes of at most 30 s, so that a prefix that leaves is
// gone from the host within the test. Its preferred lifetime is its valid
// lifetime: the host deletes an address whose lifetimes run out together,
// so an address seen deprecated was deprecated by an advert.
func lanConfig() Config {
	return Config{
		Interface: "lan0",
		Prefixes: []Prefix{
			{Prefix: staticPrefix, From: "lan.addresses"},
			{Prefix: delegated, From: "tunnel/sixpe", ValidUntil: time.Now().Add(time.Hour), PreferredUntil: time.Now().Add(30 * time.Minute)},
		},
		DNS:           []netip.Addr{boxAddr},
		MTU:           1400,
		DefaultRouter: true,
		MaxInterval:   20 * time.Second, MinInterval: 10 * time.Second,
		ValidLimit: 30 * time.Second, PreferredLimit: 30 * time.Second,
	}
}

// The Linux kernel, as a LAN host, takes braid's adverts: an address in
// each advertised /64, the default route via the box's link-local
// address, the MTU; rdisc6 reads the resolver from the answer to its
// solicitation. A prefix that leaves the configuration is deprecated on
// the host, then gone, while the other stays; when the session stops,
// the host drops its default route via the box (router lifetime 0) and
// deprecates the rest. tshark finds every advert well-formed.
func TestLANHostTakesTheAdverts(t *testing.T) {
	r := newRig(t, true)
	nstest.RequireBinary(t, "rdisc6")
	cap := r.capture()
	boxLL := linkLocal(t, r.box, "lan0")
	s := r.start(lanConfig())

	waitFor(t, "the host's addresses in both /64s", func() bool {
		_, a := r.in(staticPrefix)
		_, b := r.in(delegated)
		return a && b
	})
	wantGW := boxLL.String() + "%eth0"
	waitFor(t, "the host's default route via the box", func() bool {
		gws := r.defaultVia()
		return len(gws) == 1 && gws[0] == wantGW
	})
	if a, _ := r.in(delegated); a.Preferred == 0 || a.Preferred > 30 || a.Valid > 30 {
		t.Errorf("the host's address in the delegated /64 is valid %d s, preferred %d s: want at most 30, preferred", a.Valid, a.Preferred)
	}
	if mtu := strings.TrimSpace(nstest.In(t, r.host, "sysctl", "-n", "net.ipv6.conf.eth0.mtu")); mtu != "1400" {
		t.Errorf("the host's IPv6 MTU on eth0 is %s, want the advertised 1400", mtu)
	}
	linkLocal(t, r.host, "eth0") // rdisc6 solicits from it
	out := nstest.In(t, r.host, "rdisc6", "-1", "-n", "-w", "3000", "-r", "5", "eth0")
	out = strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"Recursive DNS server : " + boxAddr.String(), "Prefix : " + staticPrefix.String(),
		"Prefix : " + delegated.String(), "from " + boxLL.String(), "MTU : 1400 bytes", "Router lifetime : 60 ", "Source link-layer address: "} {
		if !strings.Contains(out, want) {
			t.Errorf("rdisc6 lacks %q:\n%s", want, out)
		}
	}
	st, detail := s.Status()
	for _, w := range []string{staticPrefix.String() + " valid", delegated.String() + " valid", "default router for 1m0s", "dns " + boxAddr.String(), "mtu 1400"} {
		if st != session.Running || !strings.Contains(detail, w) {
			t.Errorf("status %s %q lacks %q", st, detail, w)
		}
	}

	// The delegated prefix leaves: deprecated on the host at once, then
	// gone when its valid lifetime runs out; the static one stays.
	cfg := lanConfig()
	cfg.Prefixes = cfg.Prefixes[:1]
	if err := s.srv.Update(cfg); err != nil {
		t.Fatal(err)
	}
	r.deprecated(delegated)
	if _, detail := s.Status(); !strings.Contains(detail, delegated.String()+" deprecated") {
		t.Errorf("status %q does not say the delegated /64 is deprecated", detail)
	}
	waitFor(t, "the delegated address gone from the host", func() bool {
		_, ok := r.in(delegated)
		return !ok
	})
	if a, ok := r.in(staticPrefix); !ok || a.Deprecated {
		t.Errorf("the static address: %+v %v, want it kept, preferred", a, ok)
	}

	// braid stops: the host's default route via the box goes at once
	// (its lifetime was a minute), the static address is deprecated.
	s.Stop(t, session.ErrShutdown)
	waitFor(t, "the host's default route via the box gone", func() bool { return len(r.defaultVia()) == 0 })
	r.deprecated(staticPrefix)

	saw(t, cap, "the final advert", "icmpv6.type == 134 && icmpv6.nd.ra.router_lifetime == 0")
	cap.Stop()
	mac := lanMAC(t, r.box)
	ras := cap.Fields("icmpv6.type == 134", "ipv6.src", "ipv6.dst", "ipv6.hlim", "icmpv6.code", "icmpv6.checksum.status", "icmpv6.opt.linkaddr", "icmpv6.nd.ra.router_lifetime")
	if len(ras) < 3 {
		t.Fatalf("tshark saw %d adverts, want the first, the change and the final one at least", len(ras))
	}
	for i, l := range ras {
		lifetime := "60"
		if i == len(ras)-1 {
			lifetime = "0"
		}
		if want := strings.Join([]string{boxLL.String(), "ff02::1", "255", "0", "1", mac, lifetime}, "|"); l != want {
			t.Errorf("advert %d: %s, want %s (src|dst|hop limit|code|checksum good|source link-layer address|router lifetime)", i, l, want)
		}
	}
	if flagged := cap.Fields("icmpv6.type == 134 && (_ws.expert || _ws.malformed)", "frame.number", "_ws.expert.message"); len(flagged) > 0 {
		t.Errorf("tshark flags braid's adverts: %q", flagged)
	}
	final := cap.Fields("icmpv6.type == 134 && icmpv6.nd.ra.router_lifetime == 0", "icmpv6.opt.prefix", "icmpv6.opt.prefix.preferred_lifetime", "icmpv6.opt.rdnss.lifetime")
	if len(final) != 1 || !strings.HasPrefix(final[0], staticPrefix.Addr().String()+"|0|0") {
		t.Errorf("final adverts %q, want one: the static prefix preferred for 0 s, the resolver for 0 s", final)
	}
}

// The session waits for a LAN link that is not there yet, and advertises
// once it is; leaving the spec, it says goodbye like braid stopping: the
// host drops its default route via the box.
func TestWaitsForTheLinkAndSaysGoodbye(t *testing.T) {
	r := newRig(t, false)
	cfg := lanConfig()
	cfg.Prefixes = cfg.Prefixes[:1]
	cfg.ValidLimit, cfg.PreferredLimit = 0, 0 // RFC 9096's
	s := r.start(cfg)
	waitFor(t, "the session waiting for lan0", func() bool {
		st, detail := s.Status()
		return st == session.Waiting && strings.Contains(detail, "link lan0")
	})
	r.plug()
	boxLL := linkLocal(t, r.box, "lan0")
	waitFor(t, "the host's default route via the box", func() bool {
		gws := r.defaultVia()
		return len(gws) == 1 && gws[0] == boxLL.String()+"%eth0"
	})
	a, ok := r.in(staticPrefix)
	if !ok || a.Valid > 5400 || a.Preferred > 2700 || a.Preferred == 0 {
		t.Errorf("the host's address: %+v %v, want valid at most 5400 s and preferred at most 2700 s (RFC 9096)", a, ok)
	}
	s.Stop(t, session.ErrRemoved)
	waitFor(t, "the host's default route via the box gone", func() bool { return len(r.defaultVia()) == 0 })
	r.deprecated(staticPrefix)
}

// A restart (a configuration the session cannot take in place) is not a
// goodbye: no advert with router lifetime 0 goes out, and the next run
// advertises at once.
func TestRestartSaysNoGoodbye(t *testing.T) {
	r := newRig(t, true)
	cap := r.capture()
	boxLL := linkLocal(t, r.box, "lan0")
	cfg := lanConfig()
	cfg.Prefixes = cfg.Prefixes[:1]
	s := r.start(cfg)
	waitFor(t, "the host's default route via the box", func() bool {
		gws := r.defaultVia()
		return len(gws) == 1 && gws[0] == boxLL.String()+"%eth0"
	})
	s.Stop(t, context.Canceled)
	restarted := time.Now()
	r.start(cfg)
	saw(t, cap, "an advert of the second run", fmt.Sprintf("icmpv6.type == 134 && frame.time_epoch >= %d", restarted.Unix()))
	cap.Stop()
	if final := cap.Fields("icmpv6.type == 134 && icmpv6.nd.ra.router_lifetime == 0", "frame.number"); len(final) > 0 {
		t.Errorf("adverts with router lifetime 0 on a restart: frames %q", final)
	}
	if gws := r.defaultVia(); len(gws) != 1 {
		t.Errorf("the host's default routes after a restart: %q, want the one via the box", gws)
	}
}

// lanMAC is lan0's MAC address in the box.
func lanMAC(t *testing.T, ns string) string {
	t.Helper()
	return nstest.MAC(t, ns, "lan0")
}

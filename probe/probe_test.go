package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/netns"
	"github.com/braid-router/braid/internal/nstest"
)

// The kernel tests: probes from a namespace of their own to namespaces
// that answer, with the kernel's own echo replies, TCP listeners and
// dnsmasq, or with replies a test crafts.

// Deadlines. A probe expected to answer gets a generous one (it returns
// as soon as it is answered); one expected to go unanswered gets a short
// one, which it must use up, and no more than slack beyond it: slack
// only tells a probe that ends at its deadline from one that hangs, and
// is wide enough for a busy machine's scheduler.
const (
	answerWithin = 20 * time.Second
	silentFor    = 1500 * time.Millisecond
	slack        = 15 * time.Second
)

// rig is two paths from a prober to a far namespace that holds the
// targets; only one reaches them:
//
//	prober (p1) ── (f1) far     10.9.0.1, fd09::1 on lo: kernel echo,
//	       10.1.0.1    10.1.0.2      TCP on port 80, dnsmasq on 5353
//	       fd01::1     fd01::2
//	       (p2) ── (g2) dead    drops whatever is for the targets,
//	       10.2.0.1    10.2.0.2      silently (no ICMP error either)
//	       fd02::1     fd02::2
//
// The prober's main table prefers the dead path (metric 10, the path
// through far has 20); table 100, which `from 10.1.0.1` and `from
// fd01::1` select, has only the path through far.
type rig struct {
	prober, far, dead string
}

// Targets of the rig.
var (
	icmp4 = Target{Kind: ICMP, Addr: "10.9.0.1"}
	icmp6 = Target{Kind: ICMP, Addr: "fd09::1"}
	tcp4  = Target{Kind: TCP, Addr: "10.9.0.1:80"}
	tcp6  = Target{Kind: TCP, Addr: "[fd09::1]:80"}
	dns4  = Target{Kind: DNS, Addr: "10.9.0.1:5353", Name: "probe.test"}
	dns6  = Target{Kind: DNS, Addr: "[fd09::1]:5353", Name: "probe.test"}
	// closed4 is a port nothing listens on.
	closed4 = Target{Kind: TCP, Addr: "10.9.0.1:81"}

	all = []Target{icmp4, icmp6, tcp4, tcp6, dns4, dns6}
)

// host makes a namespace with duplicate address detection off, so that
// addresses are usable at once.
func host(t *testing.T) string {
	ns := nstest.New(t)
	nstest.In(t, ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
		"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
	return ns
}

// veth links namespace a's aDev to b's bDev, both up, with the given
// addresses (CIDR; IPv6 without DAD).
func veth(t *testing.T, a, aDev string, aAddrs []string, b, bDev string, bAddrs []string) {
	nstest.Run(t, "ip", "-n", a, "link", "add", aDev, "type", "veth", "peer", "name", bDev, "netns", b)
	for _, end := range []struct {
		ns, dev string
		addrs   []string
	}{{a, aDev, aAddrs}, {b, bDev, bAddrs}} {
		for _, ad := range end.addrs {
			addAddr(t, end.ns, end.dev, ad)
		}
		nstest.Run(t, "ip", "-n", end.ns, "link", "set", end.dev, "up")
	}
}

func addAddr(t *testing.T, ns, dev, prefix string) {
	args := []string{"-n", ns, "addr", "add", prefix, "dev", dev}
	if strings.Contains(prefix, ":") {
		args = append(args, "nodad")
	}
	nstest.Run(t, "ip", args...)
}

func newRig(t *testing.T) *rig {
	nstest.RequireRoot(t)
	nstest.RequireBinary(t, "nft")
	r := &rig{prober: host(t), far: host(t), dead: host(t)}
	nstest.In(t, r.dead, "nft", "add table inet dead; "+
		"add chain inet dead pre { type filter hook prerouting priority raw; policy accept; }; "+
		"add rule inet dead pre ip daddr 10.9.0.0/24 drop; add rule inet dead pre ip6 daddr fd09::/64 drop")
	veth(t, r.prober, "p1", []string{"10.1.0.1/24", "fd01::1/64"}, r.far, "f1", []string{"10.1.0.2/24", "fd01::2/64"})
	veth(t, r.prober, "p2", []string{"10.2.0.1/24", "fd02::1/64"}, r.dead, "g2", []string{"10.2.0.2/24", "fd02::2/64"})
	for _, a := range []string{"10.9.0.1/32", "10.9.0.2/32", "fd09::1/128", "fd09::2/128"} {
		addAddr(t, r.far, "lo", a)
	}
	for _, args := range [][]string{
		{"-4", "route", "add", "10.9.0.0/24", "via", "10.2.0.2", "dev", "p2", "metric", "10"},
		{"-4", "route", "add", "10.9.0.0/24", "via", "10.1.0.2", "dev", "p1", "metric", "20"},
		{"-4", "route", "add", "10.9.0.0/24", "via", "10.1.0.2", "dev", "p1", "table", "100"},
		{"-4", "rule", "add", "from", "10.1.0.1", "lookup", "100", "pref", "100"},
		{"-6", "route", "add", "fd09::/64", "via", "fd02::2", "dev", "p2", "metric", "10"},
		{"-6", "route", "add", "fd09::/64", "via", "fd01::2", "dev", "p1", "metric", "20"},
		{"-6", "route", "add", "fd09::/64", "via", "fd01::2", "dev", "p1", "table", "100"},
		{"-6", "rule", "add", "from", "fd01::1", "lookup", "100", "pref", "100"},
	} {
		nstest.Run(t, "ip", append([]string{"-n", r.prober}, args...)...)
	}
	return r
}

// startDNSMasq runs dnsmasq in the far namespace on port 5353 of its
// targets, answering probe.test with 10.9.9.9 and asking nobody else, and
// waits until it answers.
func (r *rig) startDNSMasq(t *testing.T) {
	bin := nstest.RequireBinary(t, "dnsmasq")
	dir := t.TempDir()
	logs := nstest.Watch(t, "ip", "netns", "exec", r.far, bin, "--no-daemon", "--conf-file=/dev/null",
		"--port=5353", "--bind-interfaces", "--listen-address=10.9.0.1,fd09::1",
		"--no-resolv", "--no-hosts", "--address=/probe.test/10.9.9.9",
		"--pid-file="+filepath.Join(dir, "pid"), "--log-facility=-", "--log-queries")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dnsmasq:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(answerWithin)
	for {
		h, err := r.query(t, "10.9.0.1:5353", "probe.test")
		if err == nil && h.RCode() == 0 && h.ANCount == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dnsmasq does not answer: %+v %v\n%s", h, err, logs.String())
		}
	}
}

// query sends the probe's query for name to server from the far
// namespace (whose own addresses dnsmasq listens on) and returns the
// response's header: a check of the codec against a real server.
func (r *rig) query(t *testing.T, server, name string) (h dnsHeader, err error) {
	q, err := dnsQuery(0x5eed, name)
	if err != nil {
		t.Fatal(err)
	}
	var c net.Conn
	nstest.Do(t, r.far, func() (err error) {
		c, err = net.Dial("udp", server)
		return err
	})
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write(q); err != nil {
		return h, err
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		return h, err
	}
	if h, err = parseDNSHeader(buf[:n]); err == nil && h.ID != 0x5eed {
		err = fmt.Errorf("response ID %#x, want 0x5eed", h.ID)
	}
	return h, err
}

// probeIn runs p.Probe(tg) in namespace ns within d, and says how long
// it took. It may be called from any goroutine.
func probeIn(t *testing.T, ns string, p *Prober, tg Target, d time.Duration) (time.Duration, error) {
	var perr error
	var took time.Duration
	if err := netns.Do(ns, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		start := time.Now()
		perr = p.Probe(ctx, tg)
		took = time.Since(start)
		return nil
	}); err != nil {
		t.Error(err)
		return 0, err
	}
	return took, perr
}

// wantAnswer fails the test unless tg answers p from ns.
func wantAnswer(t *testing.T, ns string, p *Prober, tg Target) {
	t.Helper()
	if _, err := probeIn(t, ns, p, tg, answerWithin); err != nil {
		t.Errorf("%+v: %s does not answer: %v", p, tg, err)
	}
}

// wantTimeout fails the test unless probing tg from ns times out: no
// answer, the context's deadline reported, and no more than slack beyond
// it.
func wantTimeout(t *testing.T, ns string, p *Prober, tg Target) {
	t.Helper()
	took, err := probeIn(t, ns, p, tg, silentFor)
	switch {
	case err == nil:
		t.Errorf("%+v: %s answered", p, tg)
	case !errors.Is(err, context.DeadlineExceeded):
		t.Errorf("%+v: %s: %v, want a timeout (context.DeadlineExceeded)", p, tg, err)
	case Unsent(err):
		t.Errorf("%+v: %s: %v: Unsent, though the probe left and went unanswered", p, tg, err)
	case took < silentFor-50*time.Millisecond || took > silentFor+slack:
		t.Errorf("%+v: %s timed out after %s, with a deadline of %s", p, tg, took, silentFor)
	}
}

// TestBinding: the routing table prefers a path that does not reach the
// targets; binding a probe to the other interface, or to a source address
// that policy routing sends the other way, reaches them, for every kind
// of probe and both families. Unanswered probes time out at their
// deadline.
func TestBinding(t *testing.T) {
	r := newRig(t)
	nstest.ServeTCP(t, r.far, "10.9.0.1:80", func(net.Conn) {})
	nstest.ServeTCP(t, r.far, "[fd09::1]:80", func(net.Conn) {})
	r.startDNSMasq(t)

	good := []*Prober{
		{Interface: "p1"},
		{Sources: []netip.Addr{netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("fd01::1")}},
		{Interface: "p1", Sources: []netip.Addr{netip.MustParseAddr("fd01::1"), netip.MustParseAddr("10.1.0.1")}},
	}
	bad := []*Prober{
		{}, // the routing table's choice
		{Interface: "p2"},
		{Sources: []netip.Addr{netip.MustParseAddr("10.2.0.1"), netip.MustParseAddr("fd02::1")}},
	}
	var wg sync.WaitGroup
	for _, tg := range all {
		for _, p := range good {
			wg.Go(func() { wantAnswer(t, r.prober, p, tg) })
		}
		for _, p := range bad {
			wg.Go(func() { wantTimeout(t, r.prober, p, tg) })
		}
	}
	wg.Wait()
}

// TestBindingErrors: a binding that cannot work fails at once, saying
// why, instead of waiting for its deadline.
func TestBindingErrors(t *testing.T) {
	r := newRig(t)
	notHere := &Prober{Sources: []netip.Addr{netip.MustParseAddr("10.77.0.1"), netip.MustParseAddr("fd77::1")}}
	v4Only := &Prober{Sources: []netip.Addr{netip.MustParseAddr("10.1.0.1")}}
	noLink := &Prober{Interface: "nosuch0"}
	cases := []struct {
		p    *Prober
		tg   Target
		want error
		text string
	}{
		{notHere, icmp4, syscall.EADDRNOTAVAIL, "10.77.0.1"},
		{notHere, icmp6, syscall.EADDRNOTAVAIL, "fd77::1"},
		{notHere, tcp4, syscall.EADDRNOTAVAIL, "10.77.0.1"},
		{notHere, dns6, syscall.EADDRNOTAVAIL, "fd77::1"},
		{v4Only, icmp6, nil, "no IPv6 source address"},
		{v4Only, tcp6, nil, "no IPv6 source address"},
		{v4Only, dns6, nil, "no IPv6 source address"},
		{noLink, icmp4, syscall.ENODEV, "bind to interface nosuch0"},
		{noLink, tcp6, syscall.ENODEV, "bind to interface nosuch0"},
		{noLink, dns4, syscall.ENODEV, "bind to interface nosuch0"},
	}
	for _, c := range cases {
		_, err := probeIn(t, r.prober, c.p, c.tg, answerWithin)
		switch {
		case err == nil:
			t.Errorf("%+v: %s answered", c.p, c.tg)
		case errors.Is(err, context.DeadlineExceeded):
			t.Errorf("%+v: %s waited for its deadline: %v", c.p, c.tg, err)
		case c.want != nil && !errors.Is(err, c.want), !strings.Contains(err.Error(), c.text),
			!strings.Contains(err.Error(), c.tg.String()):
			t.Errorf("%+v: %s: %v, want %v naming %q and the target", c.p, c.tg, err, c.want, c.text)
		case !Unsent(err):
			t.Errorf("%+v: %s: %v: not Unsent, though nothing left", c.p, c.tg, err)
		}
	}
}

// TestRefused: a refused connection fails a probe unless the prober
// counts it as an answer; then the path still has to work.
func TestRefused(t *testing.T) {
	r := newRig(t)
	_, err := probeIn(t, r.prober, &Prober{Interface: "p1"}, closed4, answerWithin)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("a closed port: %v, want connection refused", err)
	}
	wantAnswer(t, r.prober, &Prober{Interface: "p1", RefusedAnswers: true}, closed4)
	wantTimeout(t, r.prober, &Prober{Interface: "p2", RefusedAnswers: true}, closed4)
}

// TestDNSAnyRCode: a DNS server that answers is up, whatever it answers:
// dnsmasq refuses names it has no upstream for, and the probe still
// succeeds. A port nobody listens on fails at once (ICMP port
// unreachable).
func TestDNSAnyRCode(t *testing.T) {
	r := newRig(t)
	r.startDNSMasq(t)
	h, err := r.query(t, "[fd09::1]:5353", "unknown.example")
	if err != nil || h.RCode() == 0 {
		t.Fatalf("dnsmasq answers unknown.example with %+v (rcode %d) %v, want an error code", h, h.RCode(), err)
	}
	p := &Prober{Interface: "p1"}
	wantAnswer(t, r.prober, p, Target{Kind: DNS, Addr: "[fd09::1]:5353", Name: "unknown.example"})
	took, err := probeIn(t, r.prober, p, Target{Kind: DNS, Addr: "10.9.0.1:5399", Name: "probe.test"}, answerWithin)
	if !errors.Is(err, syscall.ECONNREFUSED) || took > answerWithin/2 {
		t.Errorf("a closed port: %v after %s, want connection refused at once", err, took)
	}
}

// TestConcurrentProbes: many probes at once, from probers bound and
// unbound, each take only their own replies. The unbound ones go the dead
// way and must time out although echo replies from the very same target
// reach their sockets the whole time (a raw socket sees every reply):
// only the identifier, sequence number and data tell them apart.
func TestConcurrentProbes(t *testing.T) {
	r := newRig(t)
	const n = 16
	const unanswered = 5 * time.Second
	bound, unbound := &Prober{Interface: "p1"}, &Prober{}
	var silent, answered sync.WaitGroup
	silentStart := time.Now()
	for _, tg := range []Target{icmp4, icmp6} {
		for range n {
			silent.Go(func() {
				took, err := probeIn(t, r.prober, unbound, tg, unanswered)
				if !errors.Is(err, context.DeadlineExceeded) || took < unanswered-50*time.Millisecond {
					t.Errorf("an unanswered probe of %s: %v after %s, want a timeout after %s", tg, err, took, unanswered)
				}
			})
		}
	}
	for _, tg := range []Target{icmp4, icmp6} {
		for range n {
			answered.Go(func() { wantAnswer(t, r.prober, bound, tg) })
		}
	}
	answered.Wait()
	if took := time.Since(silentStart); took > unanswered-time.Second {
		t.Fatalf("the answered probes took %s: too long to be sure the unanswered ones saw their replies", took)
	}
	silent.Wait()
}

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/session"
)

// The forwarder's addresses on the lab's LAN (specs/lab-dns.yaml: lan).
var (
	braidDNS4 = net.JoinHostPort(lab.BoxLANV4, "53")
	braidDNS6 = net.JoinHostPort(lab.BoxLANV6, "53")
)

// dnsRunning holds once a pass converged with the forwarder running.
func dnsRunning(st reconcile.Status) bool {
	s, ok := sessionIn(st, "session[dns/resolver]")
	return converged(st) && ok && s.State == session.Running
}

// lookup asks server for name from role, and fails the test if nothing
// answers within 5 s.
func lookup(t *testing.T, l *lab.Lab, role lab.Role, network, server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := l.Lookup(ctx, role, network, server, name, qtype)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// answers returns the records of r's answer section of type qtype, as
// their data ("198.51.100.80", or the whole record for other types).
func answers(r *dns.Msg, qtype uint16) []string {
	var out []string
	for _, rr := range r.Answer {
		if rr.Header().Rrtype != qtype {
			continue
		}
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.AAAA:
			out = append(out, v.AAAA.String())
		default:
			out = append(out, rr.String())
		}
	}
	return out
}

// untilAnswers waits until braid's forwarder answers the LAN for
// lab.NameServer (its upstreams come with the uplinks' lease and adverts).
func untilAnswers(t *testing.T, l *lab.Lab, server string) {
	t.Helper()
	var last string
	if !waitFor(90*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := l.Lookup(ctx, lab.RoleLAN, "udp", server, lab.NameServer, dns.TypeA)
		if err != nil {
			last = err.Error()
			return false
		}
		last = dns.RcodeToString[r.Rcode]
		return r.Rcode == dns.RcodeSuccess && len(answers(r, dns.TypeA)) == 1
	}) {
		t.Fatalf("braid's resolver at %s never answered %s: %s", server, lab.NameServer, last)
	}
}

// unique is a name of the test zone nobody asked before: its answer
// (NXDOMAIN) comes from upstream, never from a cache.
func unique(what string) string {
	return fmt.Sprintf("%s-%d.%s", what, rand.Uint64(), lab.TestZone)
}

// The end to end, with specs/lab-dns.yaml and the lab's unbound:
// the LAN resolves through braid on both of its addresses, UDP and TCP,
// with A and AAAA intact, the CNAME chain, NXDOMAIN with the SOA, and a
// truncated UDP answer that comes whole over TCP; filterAAAA empties the
// AAAA of the names it lists (a CNAME chain through one too) and strips
// the ipv6hint of their HTTPS answers, and no other's; a per-domain egress
// name's addresses land in egress_isp2 with their timeout, and traffic to
// them leaves by isp2, not isp1; intercept answers the LAN's DNS to
// another resolver with braid's answer; the WAN side gets no answer;
// status and the metrics say what it did.
func TestDNSResolverInTheLab(t *testing.T) {
	b := newLabBox(t)
	l := b.l
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.WaitResolver(ctx); err != nil {
		t.Fatal(err)
	}
	metricsAddr := "127.0.0.1:" + strconv.Itoa(b.freePort())
	d := b.startDaemon("-f", "../../specs/lab-dns.yaml", "--metrics-listen", metricsAddr)
	d.bound(lab.BoxWAN1V4)
	d.until("the forwarder running, both uplinks healthy", func(st reconcile.Status) bool {
		h1, k1 := healthOf(st, "isp1")
		h2, k2 := healthOf(st, "isp2")
		return dnsRunning(st) && h1 && k1 && h2 && k2
	})
	untilAnswers(t, l, braidDNS4)

	t.Run("A and AAAA intact", func(t *testing.T) {
		for _, server := range []string{braidDNS4, braidDNS6} {
			for _, network := range []string{"udp", "tcp"} {
				r := lookup(t, l, lab.RoleLAN, network, server, lab.NameServer, dns.TypeA)
				if got := answers(r, dns.TypeA); len(got) != 1 || got[0] != lab.ServerV4 {
					t.Errorf("%s %s: A %v", network, server, r.Answer)
				}
				r = lookup(t, l, lab.RoleLAN, network, server, lab.NameServer, dns.TypeAAAA)
				if got := answers(r, dns.TypeAAAA); len(got) != 1 || got[0] != lab.ServerV6 {
					t.Errorf("%s %s: AAAA %v", network, server, r.Answer)
				}
			}
		}
		r := lookup(t, l, lab.RoleLAN, "udp", braidDNS4, lab.NameMissing, dns.TypeA)
		if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
			t.Errorf("NXDOMAIN: %v", r)
		}
		r = lookup(t, l, lab.RoleLAN, "udp", braidDNS4, lab.NameBig, dns.TypeTXT)
		if !r.Truncated {
			t.Errorf("a 2 KB TXT over UDP without EDNS0: not truncated (%d records)", len(r.Answer))
		}
		r = lookup(t, l, lab.RoleLAN, "tcp", braidDNS4, lab.NameBig, dns.TypeTXT)
		if r.Truncated || len(r.Answer) != 1 || len(r.Answer[0].(*dns.TXT).Txt) != lab.BigTXTStrings {
			t.Errorf("the TXT over TCP: truncated %v, %v", r.Truncated, r.Answer)
		}
	})

	t.Run("filterAAAA", func(t *testing.T) {
		// alias.lab.example is listed: its AAAA (through the CNAME chain
		// to www) is empty, NOERROR; www's own is not.
		r := lookup(t, l, lab.RoleLAN, "udp", braidDNS6, lab.NameCNAME, dns.TypeAAAA)
		if r.Rcode != dns.RcodeSuccess || len(answers(r, dns.TypeAAAA)) != 0 {
			t.Errorf("a listed name's AAAA: %v", r)
		}
		if r = lookup(t, l, lab.RoleLAN, "udp", braidDNS6, lab.NameCNAME, dns.TypeA); len(answers(r, dns.TypeA)) != 1 {
			t.Errorf("a listed name's A: %v", r.Answer)
		}
		r = lookup(t, l, lab.RoleLAN, "udp", braidDNS4, lab.NameHTTPS, dns.TypeHTTPS)
		if got := answers(r, dns.TypeHTTPS); len(got) != 1 || strings.Contains(got[0], "ipv6hint") || !strings.Contains(got[0], "ipv4hint") {
			t.Errorf("a listed name's HTTPS: %v", r.Answer)
		}
	})

	t.Run("per-domain egress", func(t *testing.T) {
		whoami := net.JoinHostPort(lab.SteeredServerV4, strconv.Itoa(lab.WhoamiPort))
		// Before the name is resolved, its address leaves by isp1 (the
		// main table's preferred default route), once isp1's lease has put
		// its IPv4 default route in: the daemon was waited for until the
		// verdict, not that pass.
		var got string
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			if got = b.whoami(lab.RoleLAN, "tcp", whoami); got == lab.BoxWAN1V4 || time.Now().After(deadline) {
				break
			}
		}
		if got != lab.BoxWAN1V4 {
			st, _ := d.status()
			h1, _ := healthOf(st, "isp1")
			t.Fatalf("before the lookup: the server saw %s, want %s (isp1); isp1 healthy: %v", got, lab.BoxWAN1V4, h1)
		}
		r := lookup(t, l, lab.RoleLAN, "udp", braidDNS4, lab.NameSteered, dns.TypeA)
		if got := answers(r, dns.TypeA); len(got) != 1 || got[0] != lab.SteeredServerV4 {
			t.Fatalf("A %v", r.Answer)
		}
		// Committed before the answer left: the next connection is steered.
		set := b.run(lab.RoleBox, "nft", "list", "set", "inet", "braid", "egress_isp2_v4")
		if !strings.Contains(set, lab.SteeredServerV4+" timeout ") || !strings.Contains(set, "expires") {
			t.Errorf("egress_isp2_v4 lacks %s with its timeout:\n%s", lab.SteeredServerV4, set)
		}
		if got := b.whoami(lab.RoleLAN, "tcp", whoami); got != lab.BoxWAN2V4 {
			t.Errorf("after the lookup: the server saw %s, want %s (isp2)", got, lab.BoxWAN2V4)
		}
		// IPv6 is routed, not NATed: count what crosses each ISP.
		r = lookup(t, l, lab.RoleLAN, "tcp", braidDNS6, lab.NameSteered, dns.TypeAAAA)
		if got := answers(r, dns.TypeAAAA); len(got) != 1 || got[0] != lab.SteeredServerV6 {
			t.Fatalf("AAAA %v", r.Answer)
		}
		if set := b.run(lab.RoleBox, "nft", "list", "set", "inet", "braid", "egress_isp2_v6"); !strings.Contains(set, lab.SteeredServerV6+" timeout ") {
			t.Errorf("egress_isp2_v6 lacks %s:\n%s", lab.SteeredServerV6, set)
		}
		// isp2's IPv6 comes from its adverts: until its default route is
		// in isp2's table (7102), marked packets find no route there and
		// take the main table's, out of isp1. isp1 is healthy from the
		// start now (no verdict before its lease), so the test gets here
		// sooner than isp2's first advert may.
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if strings.Contains(b.run(lab.RoleBox, "ip", "-6", "route", "show", "default", "table", "7102"), "default") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("isp2's IPv6 default route never reached its table 7102:\n%s", b.run(lab.RoleBox, "ip", "-6", "route", "show", "table", "all"))
			}
		}
		wan1, wan2 := b.txPackets(lab.RoleBox, lab.BoxWAN1Dev), b.txPackets(lab.RoleBox, lab.BoxWAN2Dev)
		const n = 200
		b.burst(lab.RoleLAN, net.JoinHostPort(lab.SteeredServerV6, "9"), n)
		d1, d2 := b.txPackets(lab.RoleBox, lab.BoxWAN1Dev)-wan1, b.txPackets(lab.RoleBox, lab.BoxWAN2Dev)-wan2
		if d2 < n || d1 >= n {
			t.Errorf("%d datagrams to %s: wan2 sent %d packets, wan1 %d: want them all out of wan2", n, lab.SteeredServerV6, d2, d1)
		}
	})

	t.Run("intercept", func(t *testing.T) {
		// The LAN asks the lab's resolver itself, and another address
		// where nothing listens: braid answers both, with its policy.
		for _, server := range []string{net.JoinHostPort(lab.ResolverV4, "53"), net.JoinHostPort(lab.ResolverV6, "53"), "192.0.2.1:53", "[2001:db8::1]:53"} {
			for _, network := range []string{"udp", "tcp"} {
				r := lookup(t, l, lab.RoleLAN, network, server, lab.NameCNAME, dns.TypeAAAA)
				if r.Rcode != dns.RcodeSuccess || len(answers(r, dns.TypeAAAA)) != 0 || len(r.Answer) != 2 {
					t.Errorf("%s %s: %v: want braid's answer (the CNAMEs, the AAAA filtered)", network, server, r)
				}
			}
		}
	})

	t.Run("never from the WAN side", func(t *testing.T) {
		// isp1 routes the LAN's IPv6 prefix to the box; give it a route
		// to the LAN's IPv4 address too. Neither answers, nor do the
		// intercept's transparent sockets (every address, port 7153).
		b.run(lab.RoleISP1, "ip", "route", "add", lab.BoxLANV4+"/32", "via", lab.BoxWAN1V4)
		for _, server := range []string{braidDNS4, braidDNS6, net.JoinHostPort(lab.BoxWAN1V4, "53"), net.JoinHostPort(lab.BoxWAN1V6, "53"),
			net.JoinHostPort(lab.BoxWAN1V4, "7153"), net.JoinHostPort(lab.BoxWAN1V6, "7153"), net.JoinHostPort(lab.BoxLANV4, "7153")} {
			for _, network := range []string{"udp", "tcp"} {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				r, err := l.Lookup(ctx, lab.RoleISP1, network, server, lab.NameServer, dns.TypeA)
				cancel()
				if err == nil {
					t.Errorf("isp1 asked %s over %s and got an answer: %v", server, network, r)
				}
			}
		}
		// The path is there: the LAN client answers isp1's ping (transit
		// ICMPv6 is routed).
		if _, err := l.Run(context.Background(), lab.RoleISP1, "ping", "-c", "1", "-W", "2", lab.LANClientV6); err != nil {
			t.Errorf("isp1 cannot reach the LAN at all, so the check above proves nothing: %v", err)
		}
	})

	t.Run("status and metrics", func(t *testing.T) {
		out := b.braidOK("status")
		if !strings.Contains(out, "running     session[dns/resolver]") || !strings.Contains(out, "serving "+lab.BoxLANV4+", "+lab.BoxLANV6+" port 53, intercepting on port 7153") {
			t.Errorf("status:\n%s", out)
		}
		fams, err := b.scrape(metricsAddr)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"braid_dns_queries_total", "braid_dns_cache_hits_total", "braid_dns_filtered_answers_total", "braid_dns_egress_elements_total"} {
			if v, ok := metricValue(fams, name); !ok || v < 1 {
				t.Errorf("%s = %v (present %v), want at least 1", name, v, ok)
			}
		}
		if v, ok := metricValue(fams, "braid_dns_upstream_up", "upstream", "uplink:isp1", "address", net.JoinHostPort(lab.ResolverV4, "53"), "fallback", "false"); !ok || v != 1 {
			t.Errorf("braid_dns_upstream_up{upstream=uplink:isp1} = %v (present %v), want 1", v, ok)
		}
	})
}

// intercepted reports whether the LAN's query to server over network
// (the AAAA of lab.NameCNAME, which specs/lab-dns.yaml filters) got
// braid's answer (the CNAMEs, no AAAA) rather than the resolver's own
// (the CNAMEs and the AAAA); it fails the test on any other answer.
func intercepted(t *testing.T, l *lab.Lab, network, server string) bool {
	t.Helper()
	r := lookup(t, l, lab.RoleLAN, network, server, lab.NameCNAME, dns.TypeAAAA)
	switch n := len(answers(r, dns.TypeAAAA)); {
	case r.Rcode == dns.RcodeSuccess && n == 0 && len(r.Answer) == 2:
		return true
	case r.Rcode == dns.RcodeSuccess && n == 1:
		return false
	}
	t.Fatalf("%s %s: %v: neither braid's answer nor the resolver's", network, server, r)
	return false
}

// allIntercepted checks that the LAN's queries to the lab's resolver,
// both families, UDP and TCP, get braid's answer (want) or the
// resolver's own (!want).
func allIntercepted(t *testing.T, l *lab.Lab, want bool, when string) {
	t.Helper()
	for _, server := range []string{net.JoinHostPort(lab.ResolverV4, "53"), net.JoinHostPort(lab.ResolverV6, "53")} {
		for _, network := range []string{"udp", "tcp"} {
			if got := intercepted(t, l, network, server); got != want {
				t.Errorf("%s: %s %s intercepted %v, want %v", when, network, server, got, want)
			}
		}
	}
}

// dns.intercept fails open: after kill -9 of braid, its intercept rules
// are still in the kernel but hand nothing over (no transparent socket
// listens on their port), and the LAN's queries to the lab's resolver
// are answered by that resolver itself, both families, UDP and TCP; a
// braid started again intercepts them again.
func TestDNSInterceptFailsOpen(t *testing.T) {
	b := newLabBox(t)
	l := b.l
	spec := "../../specs/lab-dns.yaml"
	d := untilDNSRunning(t, b, spec)
	allIntercepted(t, l, true, "braid running")

	d.stop(syscall.SIGKILL)
	allIntercepted(t, l, false, "braid killed")
	rules := b.run(lab.RoleBox, "nft", "list", "chain", "inet", "braid", "prerouting_tproxy")
	for _, want := range []string{"udp dport 53 meta l4proto udp tproxy ip to :7153", "tcp dport 53 meta l4proto tcp tproxy ip6 to :7153"} {
		if !strings.Contains(rules, want) {
			t.Errorf("braid killed: the intercept rules are not left in the kernel (%q):\n%s", want, rules)
		}
	}

	d = untilDNSRunning(t, b, spec)
	allIntercepted(t, l, true, "braid started again")
	d.stop(syscall.SIGTERM)
}

// dns.intercept with no listen address: braid's resolver answers only
// what it intercepts, from the address each query was sent to (its
// transparent sockets need no address of their own): the LAN's queries
// to the lab's resolver get braid's answers, both families, UDP and TCP,
// nothing answers on the box's LAN addresses, and status says so.
func TestDNSInterceptOnly(t *testing.T) {
	b := newLabBox(t)
	l := b.l
	spec := readFile(t, "../../specs/lab-dns.yaml")
	const line = "    listen: [lan]                    # 192.168.50.1 and 2001:db8:50::1\n"
	if !strings.Contains(spec, line) {
		t.Fatalf("specs/lab-dns.yaml has no line %q", line)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.WaitResolver(ctx); err != nil {
		t.Fatal(err)
	}
	d := b.startDaemon("-f", writeSpec(t, strings.Replace(spec, line, "", 1)))
	d.bound(lab.BoxWAN1V4)
	st := d.until("the forwarder running, both uplinks healthy", func(st reconcile.Status) bool {
		h1, k1 := healthOf(st, "isp1")
		h2, k2 := healthOf(st, "isp2")
		return dnsRunning(st) && h1 && k1 && h2 && k2
	})
	if det := dnsDetail(st); !strings.HasPrefix(det, "serving only what it intercepts, on port 7153;") {
		t.Errorf("status %q", det)
	}
	// Braid's answer (the filtered AAAA) once its upstreams are learnt.
	resolver := net.JoinHostPort(lab.ResolverV4, "53")
	var last string
	if !waitFor(90*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := l.Lookup(ctx, lab.RoleLAN, "udp", resolver, lab.NameCNAME, dns.TypeAAAA)
		if err != nil {
			last = err.Error()
			return false
		}
		last = r.String()
		return r.Rcode == dns.RcodeSuccess && len(r.Answer) == 2 && len(answers(r, dns.TypeAAAA)) == 0
	}) {
		t.Fatalf("the LAN's query to %s never got braid's answer: %s", resolver, last)
	}
	allIntercepted(t, l, true, "intercept alone")
	for _, server := range []string{braidDNS4, braidDNS6} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		r, err := l.Lookup(ctx, lab.RoleLAN, "udp", server, lab.NameServer, dns.TypeA)
		cancel()
		if err == nil {
			t.Errorf("%s answered, with no listen address: %v", server, r)
		}
	}
	d.stop(syscall.SIGTERM)
}

// With the transparent proxy steering LAN TCP and UDP to the peer, the
// intercept rules share its chain and come first: the LAN's DNS to the
// lab's resolver is braid's, never proxied; after kill -9 both are inert
// and the resolver answers.
func TestDNSInterceptWithTheProxy(t *testing.T) {
	b := newLabBox(t)
	l := b.l
	const password = "lab-dns-intercept"
	braidPeerDaemon(t, nsBox(t, l.NS(lab.RolePeer)), lab.PeerPort, lab.PeerCipher, password)
	spec := labDNSSpec(t, "[uplink:isp1, uplink:isp2]", `  aggregation:
    peer:
      address: `+net.JoinHostPort(lab.PeerV4, strconv.Itoa(lab.PeerPort))+`
      cipher: `+lab.PeerCipher+`
      key: {value: `+password+`}
    tcp: proxy
    udp: peer
`)
	d := untilDNSRunning(t, b, spec)
	d.within(60*time.Second, "the proxy steering", steering)
	allIntercepted(t, l, true, "with the proxy")
	d.stop(syscall.SIGKILL)
	allIntercepted(t, l, false, "braid killed")
}

// labDNSSpec is specs/lab-dns.yaml with its upstreams replaced, and more
// written at the end of its spec (an aggregation section).
func labDNSSpec(t *testing.T, upstreams, more string) string {
	t.Helper()
	spec := readFile(t, "../../specs/lab-dns.yaml")
	const line = "    upstreams: [uplink:isp1, uplink:isp2]\n"
	if !strings.Contains(spec, line) {
		t.Fatalf("specs/lab-dns.yaml has no line %q", line)
	}
	return writeSpec(t, strings.Replace(spec, line, "    upstreams: "+upstreams+"\n", 1)+more)
}

// untilDNSRunning starts braid with spec in b's lab and waits until its
// uplinks are up and healthy and its forwarder answers the LAN.
func untilDNSRunning(t *testing.T, b *labBox, spec string) *daemon {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.l.WaitResolver(ctx); err != nil {
		t.Fatal(err)
	}
	d := b.startDaemon("-f", spec)
	d.bound(lab.BoxWAN1V4)
	d.until("the forwarder running, both uplinks healthy", func(st reconcile.Status) bool {
		h1, k1 := healthOf(st, "isp1")
		h2, k2 := healthOf(st, "isp2")
		return dnsRunning(st) && h1 && k1 && h2 && k2
	})
	untilAnswers(t, b.l, braidDNS4)
	return d
}

// dnsDetail is the forwarder's status detail.
func dnsDetail(st reconcile.Status) string {
	s, _ := sessionIn(st, "session[dns/resolver]")
	return s.Detail
}

// The upstreams in order, then the uplinks' own resolvers: an upstream
// that stops answering is skipped and the LAN never sees a failure; with
// every upstream dead, the healthy uplinks' resolvers answer (the lab's
// unbound sees the queries come from the box's uplink address), and
// status says the fallback is in use.
func TestDNSUpstreamsFailOver(t *testing.T) {
	nstest.RequireBinary(t, "dnsmasq")
	b := newLabBox(t)
	l := b.l
	// Two more upstreams: dnsmasq in the core, forwarding to unbound,
	// caching nothing.
	const fwd4, fwd6 = "198.51.100.54", "2001:db8:ffff::54"
	b.run(lab.RoleInet, "ip", "addr", "add", fwd4+"/32", "dev", "lo")
	b.run(lab.RoleInet, "ip", "addr", "add", fwd6+"/128", "dev", "lo", "nodad")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l.Start(ctx, lab.Process{Name: "dns-forwarder", Role: lab.RoleInet, Command: []string{"dnsmasq",
		"--keep-in-foreground", "--log-facility=-", "--log-queries", "--conf-file=/dev/null", "--pid-file=",
		"--user=root", "--group=root", "--no-resolv", "--no-hosts", "--cache-size=0",
		"--listen-address=" + fwd4 + "," + fwd6, "--bind-interfaces", "--server=" + lab.ResolverV4}}); err != nil {
		t.Fatal(err)
	}
	d := untilDNSRunning(t, b, labDNSSpec(t, `["`+fwd4+`", "[`+fwd6+`]:53"]`, ""))
	wan1 := startDNSCapture(t, b.ns, lab.BoxWAN1Dev) // once braid has the link up
	answered := func(what string) string {
		t.Helper()
		name := unique(what)
		r := lookup(t, l, lab.RoleLAN, "udp", braidDNS4, name, dns.TypeA)
		if r.Rcode != dns.RcodeNameError || len(r.Ns) == 0 {
			t.Fatalf("%s: %s", name, r)
		}
		return name
	}
	inUse := func(what, addr string) {
		t.Helper()
		d.until(what, func(st reconcile.Status) bool { return upstreamInUse(dnsDetail(st), addr) })
	}
	answered("first")
	inUse("the first upstream in use", fwd4+":53")

	// The first stops answering (silently): the LAN's queries are
	// answered all the same, by the second.
	block := func(addr string) {
		t.Helper()
		fam := "ip"
		if strings.Contains(addr, ":") {
			fam = "ip6"
		}
		b.run(lab.RoleInet, "nft", "add", "table", "inet", "dnsblock")
		b.run(lab.RoleInet, "nft", "add", "chain", "inet", "dnsblock", "in", "{ type filter hook input priority 0; }")
		b.run(lab.RoleInet, "nft", "add", "rule", "inet", "dnsblock", "in", fam, "daddr", addr, "drop")
	}
	block(fwd4)
	for i := range 5 {
		answered("second-" + strconv.Itoa(i))
	}
	inUse("the second upstream in use", "["+fwd6+"]:53")
	d.until("the first upstream dead", func(st reconcile.Status) bool {
		return strings.Contains(dnsDetail(st), fwd4+" "+fwd4+":53 dead")
	})

	// Both dead: the uplinks' own resolvers answer, out of the uplinks.
	block(fwd6)
	var names []string
	for i := range 5 {
		names = append(names, answered("fallback-"+strconv.Itoa(i)))
	}
	d.until("the fallback in use", func(st reconcile.Status) bool {
		det := dnsDetail(st)
		i := strings.Index(det, "fallback: ")
		return i >= 0 && strings.Contains(det[i:], "in use") && !strings.Contains(det[:i], "in use")
	})
	log, err := l.ProcessLog(lab.ResolverProcess)
	if err != nil {
		t.Fatal(err)
	}
	// The last name came from the box, out of an uplink (isp1's lease
	// named unbound first: the uplinks by priority).
	last := names[len(names)-1]
	if want := lab.BoxWAN1V4 + " " + last + " A IN"; !strings.Contains(log, want) {
		t.Errorf("unbound's log lacks %q:\n%s", want, log)
	}
	// And the capture TestDNSThroughThePeer trusts sees it on wan1.
	if n := wan1.count(); n == 0 {
		t.Error("no DNS captured on wan1, where the fallback's queries went")
	}
}

// upstreamInUse reports whether the forwarder's status detail says the
// upstream at addr is up and in use.
func upstreamInUse(detail, addr string) bool {
	for _, part := range strings.Split(detail, " | ") {
		for _, u := range strings.Split(part, "; ") {
			if strings.Contains(" "+u, " "+addr+" up") && strings.HasSuffix(u, ", in use") {
				return true
			}
		}
	}
	return false
}

// upstreams: [peer]: the forwarder asks the resolver behind the
// aggregation peer, DNS over TCP in a shadowsocks stream: the lab's
// unbound sees the query come from the peer's address, and nothing on the
// box's uplinks is DNS.
func TestDNSThroughThePeer(t *testing.T) {
	b := newLabBox(t)
	l := b.l
	const password = "lab-dns-peer"
	braidPeerDaemon(t, nsBox(t, l.NS(lab.RolePeer)), lab.PeerPort, lab.PeerCipher, password)
	spec := labDNSSpec(t, "[peer]", `  aggregation:
    peer:
      address: `+net.JoinHostPort(lab.PeerV4, strconv.Itoa(lab.PeerPort))+`
      cipher: `+lab.PeerCipher+`
      key: {value: `+password+`}
      dns: `+net.JoinHostPort(lab.ResolverV4, "53")+`
    tcp: direct
    udp: direct
`)
	d := untilDNSRunning(t, b, spec)
	// Once braid has the links up (a capture started on a link that is
	// down sees nothing after it comes up).
	caps := []*capture{startDNSCapture(t, b.ns, lab.BoxWAN1Dev), startDNSCapture(t, b.ns, lab.BoxWAN2Dev)}
	name := unique("peer")
	r := lookup(t, l, lab.RoleLAN, "tcp", braidDNS6, name, dns.TypeAAAA)
	if r.Rcode != dns.RcodeNameError {
		t.Fatalf("%s: %s", name, r)
	}
	log, err := l.ProcessLog(lab.ResolverProcess)
	if err != nil {
		t.Fatal(err)
	}
	if want := lab.PeerV4 + " " + name + " AAAA IN"; !strings.Contains(log, want) {
		t.Errorf("unbound's log lacks %q:\n%s", want, log)
	}
	d.until("the peer in use", func(st reconcile.Status) bool { return upstreamInUse(dnsDetail(st), lab.ResolverV4+":53") })
	for _, c := range caps {
		if n := c.count(); n != 0 {
			t.Errorf("%d DNS packets on %s:\n%s", n, c.file, tshark("-r", c.file))
		}
	}
}

// startDNSCapture captures DNS (port 53, UDP and TCP) on dev in namespace
// ns, and returns once dumpcap captures.
func startDNSCapture(t *testing.T, ns, dev string) *capture {
	t.Helper()
	return startCapture(t, ns, dev, "port 53")
}

// count stops the capture and returns how many packets it holds.
func (c *capture) count() int {
	c.stop()
	out := strings.TrimSpace(tshark("-r", c.file, "-T", "fields", "-e", "frame.number"))
	if out == "" {
		return 0
	}
	return len(strings.Split(out, "\n"))
}

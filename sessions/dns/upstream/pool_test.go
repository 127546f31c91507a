package upstream

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/braid-router/braid/internal/nstest"
)

// Addresses of the resolvers' namespace: three dnsmasq on its loopback,
// each answering who.test with an address of its own, reached from the
// box over a veth.
var (
	resolverA = netip.MustParseAddr("10.53.0.1")
	resolverB = netip.MustParseAddr("10.53.0.2")
	resolverF = netip.MustParseAddr("10.53.0.3")
	// nobody is an address of the resolvers' namespace where nothing
	// listens.
	nobody = netip.MustParseAddr("10.53.0.9")
)

const (
	answerA = "10.0.0.1"
	answerB = "10.0.0.2"
	answerF = "10.0.0.3"
)

// resolvers starts the resolvers' namespace and its three dnsmasq
// (resolverA also authoritative for nx.test, so that it says NXDOMAIN
// there, where resolverB answers), and returns it.
func resolvers(t *testing.T) string {
	t.Helper()
	srv := nstest.New(t)
	veth(t, "up0", "10.61.0.1/24", srv, "dn0", "10.61.0.2/24")
	nstest.Run(t, "ip", "route", "add", "10.53.0.0/24", "via", "10.61.0.2")
	for _, a := range []netip.Addr{resolverA, resolverB, resolverF, nobody} {
		nstest.Run(t, "ip", "-n", srv, "addr", "add", a.String()+"/32", "dev", "lo")
	}
	dnsmasq(t, srv, resolverA.String(), answerA, "--local=/nx.test/")
	dnsmasq(t, srv, resolverB.String(), answerB, "--address=/only-b.test/"+answerB, "--address=/none.nx.test/"+answerB)
	dnsmasq(t, srv, resolverF.String(), answerF)
	return srv
}

func resolver(name string, a netip.Addr) Resolver {
	return Resolver{Name: name, Addr: netip.AddrPortFrom(a, 53)}
}

// TestPoolOrderHealthFallback: the first upstream answers; dead (its
// queries dropped), the query is answered by the second, and Status
// shows the first down; both dead, the fallback answers and Status says
// it is in use; the first, back, answers again once its probe found it.
// SERVFAIL and REFUSED move on to the next upstream, NXDOMAIN is an
// answer.
func TestPoolOrderHealthFallback(t *testing.T) {
	if !inBox(t, "dnsmasq") {
		return
	}
	srv := resolvers(t)
	p := New(Config{
		Upstreams: []Resolver{resolver("a", resolverA), resolver("b", resolverB)},
		Fallback:  []Resolver{resolver("uplink:f", resolverF)},
		Timeout:   tryTimeout,
		Log:       nstest.Logger(t),
	})
	defer p.Close()

	if got := ask(t, p, "who.test."); !slices.Equal(got, []string{answerA}) {
		t.Fatalf("who.test = %v, want the first upstream's %s", got, answerA)
	}
	if s := state(t, p, "a"); !s.Up || !s.InUse || s.Err != "" {
		t.Errorf("the first upstream, having answered: %+v", s)
	}

	liftA := drop(t, srv, resolverA)
	if got := ask(t, p, "who.test."); !slices.Equal(got, []string{answerB}) {
		t.Fatalf("who.test with the first upstream dead = %v, want the second's %s", got, answerB)
	}
	if s := state(t, p, "a"); s.Up || s.InUse || !strings.Contains(s.Err, "timed out") {
		t.Errorf("the first upstream, dead: %+v", s)
	}
	if s := state(t, p, "b"); !s.Up || !s.InUse {
		t.Errorf("the second upstream, answering: %+v", s)
	}
	if p.FallbackInUse() {
		t.Error("the fallback in use with the second upstream up")
	}

	liftB := drop(t, srv, resolverB)
	if got := ask(t, p, "who.test."); !slices.Equal(got, []string{answerF}) {
		t.Fatalf("who.test with every upstream dead = %v, want the fallback's %s", got, answerF)
	}
	if !p.FallbackInUse() {
		t.Error("every upstream dead, and the fallback not said in use")
	}
	if s := state(t, p, "uplink:f"); !s.Up || !s.InUse || !s.Fallback {
		t.Errorf("the fallback, answering: %+v", s)
	}
	if s := state(t, p, "b"); s.Up {
		t.Errorf("the second upstream, dead: %+v", s)
	}

	liftA()
	waitFor(t, "the first upstream back", func() bool { return state(t, p, "a").Up })
	if got := ask(t, p, "who.test."); !slices.Equal(got, []string{answerA}) {
		t.Fatalf("who.test with the first upstream back = %v, want %s", got, answerA)
	}
	if p.FallbackInUse() {
		t.Error("the fallback still in use with the first upstream back")
	}
	if s := state(t, p, "a"); !s.InUse {
		t.Errorf("the first upstream, back: %+v", s)
	}

	liftB()
	waitFor(t, "the second upstream back", func() bool { return state(t, p, "b").Up })
	// The first has no upstream of its own: it refuses only-b.test, and
	// the second answers it. The first stays up.
	if got := ask(t, p, "only-b.test."); !slices.Equal(got, []string{answerB}) {
		t.Errorf("only-b.test, refused by the first upstream = %v, want the second's %s", got, answerB)
	}
	if s := state(t, p, "a"); !s.Up || s.Err != "REFUSED" {
		t.Errorf("the first upstream, having refused a query: %+v", s)
	}
	// NXDOMAIN from the first is the answer: the second is not asked.
	r, err := askMsg(p, "none.nx.test.")
	if err != nil || r.Rcode != dns.RcodeNameError {
		t.Errorf("none.nx.test = %v, %v; want the first upstream's NXDOMAIN", r, err)
	}
}

// TestPoolNothingListening: an upstream where nothing listens (an ICMP
// port unreachable) is dead at once, and the query answered by the next.
func TestPoolNothingListening(t *testing.T) {
	if !inBox(t, "dnsmasq") {
		return
	}
	resolvers(t)
	p := New(Config{Upstreams: []Resolver{resolver("nobody", nobody), resolver("b", resolverB)}, Timeout: tryTimeout, Log: nstest.Logger(t)})
	defer p.Close()
	if got := ask(t, p, "who.test."); !slices.Equal(got, []string{answerB}) {
		t.Fatalf("who.test = %v, want the second upstream's %s", got, answerB)
	}
	if s := state(t, p, "nobody"); s.Up || !strings.Contains(s.Err, "connection refused") {
		t.Errorf("the upstream where nothing listens: %+v", s)
	}
	if s := state(t, p, "b"); !s.Up || !s.InUse {
		t.Errorf("the second upstream: %+v", s)
	}

	// Both judged dead, their probes an hour away: the query goes to
	// every resolver at once, and the second's answer brings it back.
	later := time.Now().Add(time.Hour)
	p.mu.Lock()
	for _, m := range p.members {
		m.h.Tried(Failed, 0, "judged dead by the test", later)
	}
	p.mu.Unlock()
	if got := ask(t, p, "who.test."); !slices.Equal(got, []string{answerB}) {
		t.Fatalf("who.test with every resolver judged dead = %v, want the second's %s", got, answerB)
	}
	if s := state(t, p, "b"); !s.Up {
		t.Errorf("the second upstream, having answered: %+v", s)
	}
}

// TestPoolTruncated: a truncated answer over UDP (no EDNS0: 512 octets)
// is asked again over TCP, of the same resolver, which gives it whole;
// the TCP connection is kept and reused for the next, and dialled again
// once closed.
func TestPoolTruncated(t *testing.T) {
	if !inBox(t, "dnsmasq") {
		return
	}
	srv := resolvers(t)
	nstest.NftLoad(t, srv, `table inet count {
	counter syn {}
	chain in {
		type filter hook input priority -20; policy accept;
		tcp dport 53 tcp flags & (syn | ack) == syn counter name syn
	}
}`)
	syns := func() string {
		out := nstest.In(t, srv, "nft", "list", "counter", "inet", "count", "syn")
		i := strings.Index(out, "packets ")
		return strings.Fields(out[i:])[1]
	}
	p := New(Config{Upstreams: []Resolver{resolver("b", resolverB)}, Idle: within, Timeout: tryTimeout, Log: nstest.Logger(t)})
	defer p.Close()
	for i := range 3 {
		got := ask(t, p, "big.test.")
		if len(got) != bigCount {
			t.Fatalf("query %d: big.test = %d addresses, want %d", i, len(got), bigCount)
		}
	}
	if n := syns(); n != "1" {
		t.Errorf("%s TCP connections for three truncated answers, want one, reused", n)
	}
	// The server resets the connection: the next query dials again.
	nstest.In(t, srv, "ss", "-K", "src", resolverB.String(), "sport", "53")
	if got := ask(t, p, "big.test."); len(got) != bigCount {
		t.Fatalf("big.test after the connection's end = %d addresses, want %d", len(got), bigCount)
	}
	if n := syns(); n != "2" {
		t.Errorf("%s TCP connections, want a second after the first ended", n)
	}
	if s := state(t, p, "b"); !s.Up {
		t.Errorf("the upstream, its connection reset: %+v", s)
	}
}

// TestPoolIPv6: an IPv6 resolver, over UDP and, for a truncated answer,
// TCP.
func TestPoolIPv6(t *testing.T) {
	if !inBox(t, "dnsmasq") {
		return
	}
	srv := nstest.New(t)
	nstest.Run(t, "ip", "link", "add", "v6up", "type", "veth", "peer", "name", "v6dn", "netns", srv)
	nstest.Run(t, "ip", "addr", "add", "fd61::1/64", "dev", "v6up", "nodad")
	nstest.Run(t, "ip", "link", "set", "v6up", "up")
	nstest.Run(t, "ip", "-n", srv, "addr", "add", "fd61::2/64", "dev", "v6dn", "nodad")
	nstest.Run(t, "ip", "-n", srv, "link", "set", "v6dn", "up")
	nstest.Run(t, "ip", "-n", srv, "addr", "add", "fd53::1/128", "dev", "lo", "nodad")
	nstest.Run(t, "ip", "route", "add", "fd53::/64", "via", "fd61::2")
	dnsmasq(t, srv, "fd53::1", answerA)
	p := New(Config{Upstreams: []Resolver{resolver("v6", netip.MustParseAddr("fd53::1"))}, Timeout: tryTimeout, Log: nstest.Logger(t)})
	defer p.Close()
	if got := ask(t, p, "who.test."); !slices.Equal(got, []string{answerA}) {
		t.Errorf("who.test = %v, want %s", got, answerA)
	}
	if got := ask(t, p, "big.test."); len(got) != bigCount {
		t.Errorf("big.test = %d addresses, want %d", len(got), bigCount)
	}
}

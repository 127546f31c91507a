package upstream

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/braid-router/braid/internal/nstest"
)

// TestPoolMark: a resolver with a mark is asked out of the uplink the
// mark selects. The box has two uplink-like veths to the resolver's
// namespace; its main table routes the resolver by the first, which
// drops DNS, and the table that mark 101 selects (a policy rule, as
// braid's uplinks have) by the second. Marked, the queries (UDP, and TCP
// for a truncated answer) arrive by the second and are answered;
// unmarked, they arrive by the first and go unanswered.
func TestPoolMark(t *testing.T) {
	if !inBox(t, "dnsmasq") {
		return
	}
	srv := nstest.New(t)
	veth(t, "w1", "10.71.0.1/24", srv, "w1p", "10.71.0.2/24")
	veth(t, "w2", "10.72.0.1/24", srv, "w2p", "10.72.0.2/24")
	nstest.Run(t, "ip", "-n", srv, "addr", "add", "10.99.0.1/32", "dev", "lo")
	nstest.Run(t, "ip", "route", "add", "10.99.0.0/24", "via", "10.71.0.2")
	nstest.Run(t, "ip", "route", "add", "10.99.0.0/24", "via", "10.72.0.2", "table", "101")
	nstest.Run(t, "ip", "rule", "add", "fwmark", "101", "lookup", "101")
	// The answers come back by the second veth, whose reverse path (the
	// main table) is the first: no reverse path filter, as on a box
	// with several uplinks.
	for _, c := range []string{"all", "default", "w1", "w2"} {
		nstest.Run(t, "sysctl", "-qw", "net.ipv4.conf."+c+".rp_filter=0")
	}
	nstest.NftLoad(t, srv, `table inet paths {
	counter via1 {}
	counter via2 {}
	chain in {
		type filter hook input priority -10; policy accept;
		iifname "w1p" meta l4proto { udp, tcp } th dport 53 counter name via1 drop
		iifname "w2p" meta l4proto { udp, tcp } th dport 53 counter name via2
	}
}`)
	packets := func(counter string) int {
		out := nstest.In(t, srv, "nft", "list", "counter", "inet", "paths", counter)
		i := strings.Index(out, "packets ")
		n, err := strconv.Atoi(strings.Fields(out[i:])[1])
		if err != nil {
			t.Fatalf("counter %s: %v\n%s", counter, err, out)
		}
		return n
	}
	dnsmasq(t, srv, "10.99.0.1", answerA)
	addr := netip.MustParseAddrPort("10.99.0.1:53")

	marked := New(Config{Upstreams: []Resolver{{Name: "uplink:wan2", Addr: addr, Uplink: "wan2", Mark: 101}}, Timeout: tryTimeout, Log: nstest.Logger(t)})
	defer marked.Close()
	if got := ask(t, marked, "who.test."); len(got) != 1 || got[0] != answerA {
		t.Fatalf("who.test, marked = %v, want %s", got, answerA)
	}
	if got := ask(t, marked, "big.test."); len(got) != bigCount {
		t.Fatalf("big.test, marked = %d addresses, want %d (over TCP)", len(got), bigCount)
	}
	if n1, n2 := packets("via1"), packets("via2"); n1 != 0 || n2 == 0 {
		t.Errorf("marked: %d DNS packets by the first path, %d by the second; want none, some", n1, n2)
	}

	plain := New(Config{Upstreams: []Resolver{{Name: "plain", Addr: addr}}, Timeout: tryTimeout, Log: nstest.Logger(t)})
	defer plain.Close()
	if r, err := askMsg(plain, "who.test."); err == nil {
		t.Errorf("who.test, unmarked, by the path that drops DNS = %v, want no answer", r)
	}
	if n := packets("via1"); n == 0 {
		t.Error("unmarked: no DNS packet by the first path")
	}
}

package dns

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/braid-router/braid/internal/nstest"
)

// TestIntercept: with Config.InterceptPort, the forwarder answers the
// queries the kernel's tproxy hands it, each from the address and port
// its client asked. A LAN client in a namespace of its own, behind a
// veth, asks addresses that are nobody's (192.0.2.53, 2001:db8::53) over
// UDP and TCP; the lab's namespace steers them as braid's compile does
// (dns.intercept: tproxy to InterceptPort, marked for a policy rule that
// delivers them locally). The client's sockets are connected to those
// addresses: only a reply from them, port 53, reaches it.
func TestIntercept(t *testing.T) {
	l := newLab(t)
	if l == nil {
		return
	}
	const mark = 0x35
	client := nstest.New(t)
	router := func(args ...string) { nstest.Run(t, "ip", append([]string{"-n", l.ns}, args...)...) }
	host := func(args ...string) { nstest.Run(t, "ip", append([]string{"-n", client}, args...)...) }
	router("link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", client)
	router("addr", "add", "10.54.0.1/24", "dev", "lan0")
	router("addr", "add", "fd54::1/64", "dev", "lan0", "nodad")
	router("link", "set", "lan0", "up")
	host("link", "set", "lo", "up")
	host("addr", "add", "10.54.0.2/24", "dev", "eth0")
	host("addr", "add", "fd54::2/64", "dev", "eth0", "nodad")
	host("link", "set", "eth0", "up")
	host("route", "add", "default", "via", "10.54.0.1")
	host("-6", "route", "add", "default", "via", "fd54::1")
	for _, fam := range []string{"-4", "-6"} {
		router(fam, "rule", "add", "fwmark", fmt.Sprint(mark), "lookup", "100")
		router(fam, "route", "add", "local", "default", "dev", "lo", "table", "100")
	}
	nstest.NftLoad(t, l.ns, fmt.Sprintf(`table inet intercept {
	chain prerouting {
		type filter hook prerouting priority mangle + 1; policy accept;
		iifname "lan0" fib daddr type local return
		iifname "lan0" meta l4proto udp udp dport 53 tproxy ip to :%[1]d meta mark set %[2]d
		iifname "lan0" meta l4proto tcp tcp dport 53 tproxy ip to :%[1]d meta mark set %[2]d
		iifname "lan0" meta l4proto udp udp dport 53 tproxy ip6 to :%[1]d meta mark set %[2]d
		iifname "lan0" meta l4proto tcp tcp dport 53 tproxy ip6 to :%[1]d meta mark set %[2]d
	}
}
`, InterceptPort, mark))

	r := l.serve(&Server{PrefetchInterval: -1}, Config{InterceptPort: InterceptPort})
	ask := func(network string, to netip.Addr, name string) *dns.Msg {
		t.Helper()
		var a *dns.Msg
		nstest.Do(t, client, func() error {
			c := &dns.Client{Net: network}
			var err error
			a, _, err = c.Exchange(query(name, dns.TypeA, true), netip.AddrPortFrom(to, 53).String())
			if err != nil {
				return fmt.Errorf("%s query to %s: %w", network, to, err)
			}
			return nil
		})
		return a
	}
	for _, to := range []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")} {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(network+" to "+to.String(), func(t *testing.T) {
				before := r.stats.Snapshot()
				a := ask(network, to, "a.test.example.")
				if a.Rcode != dns.RcodeSuccess || len(a.Answer) != 1 || a.Answer[0].(*dns.A).A.String() != "192.0.2.10" {
					t.Fatalf("reply:\n%v", a)
				}
				after := r.stats.Snapshot()
				got, was := after.QueriesUDP, before.QueriesUDP
				if network == "tcp" {
					got, was = after.QueriesTCP, before.QueriesTCP
				}
				if got != was+1 {
					t.Errorf("%s queries counted: %d, then %d", network, was, got)
				}
			})
		}
	}
}

package probe

import (
	"net/netip"
	"strings"
	"testing"
)

func TestTargetString(t *testing.T) {
	for _, c := range []struct {
		t    Target
		want string
	}{
		{Target{Kind: ICMP, Addr: "192.0.2.1"}, "icmp 192.0.2.1"},
		{Target{Kind: TCP, Addr: "[2001:db8::1]:22"}, "tcp [2001:db8::1]:22"},
		{Target{Kind: DNS, Addr: "192.0.2.53:53", Name: "example.net"}, "dns 192.0.2.53:53 example.net"},
	} {
		if got := c.t.String(); got != c.want {
			t.Errorf("%#v: %q, want %q", c.t, got, c.want)
		}
	}
}

func TestTargetAddresses(t *testing.T) {
	for _, c := range []struct {
		addr string
		want netip.AddrPort
		err  string
	}{
		{"192.0.2.53", netip.MustParseAddrPort("192.0.2.53:53"), ""},
		{"192.0.2.53:5353", netip.MustParseAddrPort("192.0.2.53:5353"), ""},
		{"2001:db8::53", netip.MustParseAddrPort("[2001:db8::53]:53"), ""},
		{"[2001:db8::53]:5353", netip.MustParseAddrPort("[2001:db8::53]:5353"), ""},
		{"[::ffff:192.0.2.53]:53", netip.MustParseAddrPort("192.0.2.53:53"), ""},
		{"dns.example.net:53", netip.AddrPort{}, "not IP:PORT"},
		{"", netip.AddrPort{}, "not IP:PORT"},
	} {
		got, err := Target{Kind: DNS, Addr: c.addr}.server()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("dns %q: error %v, want %q", c.addr, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("dns %q: %v %v, want %v", c.addr, got, err, c.want)
		}
	}
	if ip, err := (Target{Kind: ICMP, Addr: "::ffff:10.0.0.1"}).ip(); err != nil || ip != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("an IPv4-mapped ICMP target: %v %v, want 10.0.0.1", ip, err)
	}
	if _, err := (Target{Kind: ICMP, Addr: "host.example.net"}).ip(); err == nil {
		t.Error("an ICMP target that is a name was accepted")
	}
	for addr, want := range map[string]string{
		"host.example.net:22": "",
		"[2001:db8::1]:443":   "",
		"192.0.2.1":           "missing port",
		"192.0.2.1:0":         "from 1 to 65535",
		"192.0.2.1:65536":     "from 1 to 65535",
		"192.0.2.1:ssh":       "from 1 to 65535",
	} {
		_, _, err := Target{Kind: TCP, Addr: addr}.hostPort()
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("tcp %q: error %v, want %q", addr, err, want)
		}
	}
}

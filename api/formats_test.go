package api

import (
	"reflect"
	"strings"
	"testing"
)

func TestFormats(t *testing.T) {
	for _, tc := range []struct {
		check func(string) string
		in    string
		want  string // a substring of the message; "" means valid
	}{
		{checkCIDR, "192.168.1.0/24", ""},
		{checkCIDR, "2001:db8::/32", ""},
		{checkCIDR, "0.0.0.0/0", ""},
		{checkCIDR, "192.168.1.1/24", `did you mean "192.168.1.0/24"?`},
		{checkCIDR, "192.168.1.1", "is not a prefix"},
		{checkCIDR, "192.168.1.0/33", "is not a prefix"},
		{checkCIDR, "fe80::/10%eth0", "is not a prefix"},
		{checkIfAddr, "192.168.1.1/24", ""},
		{checkIfAddr, "2001:db8::1/64", ""},
		{checkIfAddr, "192.168.1.1", "has no prefix length"},
		{checkIfAddr, "x/24", "is not an interface address"},
		{checkHostPort, "192.0.2.1:443", ""},
		{checkHostPort, "[2001:db8::1]:443", ""},
		{checkHostPort, "vps.example.net:65101", ""},
		{checkHostPort, "vps.example.net.:1", ""},
		{checkHostPort, "192.0.2.1", "is not HOST:PORT"},
		{checkHostPort, "2001:db8::1", "has no port"},
		{checkHostPort, "192.0.2.1:0", "out of range"},
		{checkHostPort, "192.0.2.1:65536", "out of range"},
		{checkHostPort, "192.0.2.1:http", "out of range"},
		{checkHostPort, ":443", "neither an IP address nor a host name"},
		{checkHostPort, "192.0.2.300:443", "neither an IP address nor a host name"},
		{checkHostPort, "lns1.example.net:1701", ""},
		{checkHostPort, "-bad-.net:1", "neither an IP address nor a host name"},
		{checkIfName, "eth0", ""},
		{checkIfName, "br-lan.100", ""},
		{checkIfName, "fifteen-bytes-x", ""},
		{checkIfName, "sixteen-bytes-xx", "longer than 15 bytes"},
		{checkIfName, "a/b", "'/'"},
		{checkIfName, "a:b", "':'"},
		{checkIfName, "a b", "whitespace"},
		{checkIfName, "a\tb", "whitespace"},
		{checkIfName, "..", "not an interface name"},
		{checkName, "sfr", ""},
		{checkName, "4g", ""},
		{checkName, "isp-2", ""},
		{checkName, strings.Repeat("a", 63), ""},
		{checkName, strings.Repeat("a", 64), "invalid name"},
		{checkName, "SFR", `did you mean "sfr"?`},
		{checkName, "isp_2", "invalid name"},
		{checkName, "isp-", "invalid name"},
		{checkName, "-isp", "invalid name"},
		{checkName, "isp.2", "invalid name"},
		{checkDuration, "500ms", ""},
		{checkDuration, "1m30s", ""},
		{checkDuration, "5", "want a number and a unit"},
		{checkDuration, "0s", "must be positive"},
		{checkDuration, "-1s", "must be positive"},
		{checkResolver, "192.0.2.53", ""},
		{checkResolver, "192.0.2.53:5353", ""},
		{checkResolver, "2001:db8::53", ""},
		{checkResolver, "[2001:db8::53]:53", ""},
		{checkResolver, "dns.example.net", "is a name"},
		{checkResolver, "dns.example.net:53", "is a name"},
		{checkResolver, "192.0.2.53:0", "out of range"},
		{checkResolver, "[2001:db8::53]", "is not ADDRESS or ADDRESS:PORT"},
		{checkResolver, "not a resolver", "is not ADDRESS or ADDRESS:PORT"},
		{checkResolver, "192.0.2.300:53", "is not an IP address"},
		{checkDomain, "example.com", ""},
		{checkDomain, "com", ""},
		{checkDomain, "xn--bcher-kva.example", ""},
		{checkDomain, "Example.com", `did you mean "example.com"?`},
		{checkDomain, ".netflix.com", `did you mean "netflix.com"?`},
		{checkDomain, "*.netflix.com", `did you mean "netflix.com"?`},
		{checkDomain, "netflix.com.", `did you mean "netflix.com"?`},
		{checkDomain, "192.0.2.1", "is an IP address"},
		{checkDomain, "a..b", "invalid DNS name"},
		{checkDomain, "_dmarc.example.com", "invalid DNS name"},
		{checkDomain, "-x.example.com", "invalid DNS name"},
		{checkDomain, strings.Repeat("a", 64) + ".com", "invalid DNS name"},
		{checkMAC, "00:24:d4:aa:bb:cc", ""},
		{checkMAC, "02:00:5e:10:00:01", ""},
		{checkMAC, "00:24:D4:AA:BB:CC", `did you mean "00:24:d4:aa:bb:cc"?`},
		{checkMAC, "00-24-d4-aa-bb-cc", `did you mean "00:24:d4:aa:bb:cc"?`},
		{checkMAC, "0024d4aabbcc", `did you mean "00:24:d4:aa:bb:cc"?`},
		{checkMAC, "0024.d4aa.bbcc", `did you mean "00:24:d4:aa:bb:cc"?`},
		{checkMAC, "0:24:d4:aa:bb:cc", "is not a MAC address"},
		{checkMAC, "00:24:d4:aa:bb", "is not a MAC address"},
		{checkMAC, "00:24:d4:aa:bb:cc:dd:ee", "is not a MAC address"},
		{checkMAC, "00:24:d4:aa:bb:cg", "is not a MAC address"},
		{checkMAC, "00:00:00:00:00:00", "all zeros"},
		{checkMAC, "01:00:5e:00:00:01", "multicast"},
		{checkMAC, "ff:ff:ff:ff:ff:ff", "multicast"},
		{checkMAC, "33:33:00:00:00:01", "multicast"},
		{checkAddrPort, "127.0.0.1:53", ""},
		{checkAddrPort, "[::1]:53", ""},
		{checkAddrPort, "127.0.0.1", "has no port"},
		{checkAddrPort, "::1", "has no port"},
		{checkAddrPort, "127.0.0.1:0", "out of range"},
		{checkAddrPort, "localhost:53", "is a name"},
		{checkAddrPort, "127.0.0.1:dns", "is not ADDRESS:PORT"},
		{checkServer, "192.0.2.10", ""},
		{checkServer, "2001:db8::10", ""},
		{checkServer, "lns.example.net", ""},
		{checkServer, "lns.example.net:1701", ""},
		{checkServer, "[2001:db8::10]:1701", ""},
		{checkServer, "lns.example.net:0", "out of range"},
		{checkServer, "not a host", "is not HOST or HOST:PORT"},
		{checkServer, "192.0.2.300", "is not HOST or HOST:PORT"},
	} {
		got := tc.check(tc.in)
		name := funcName(tc.check)
		switch {
		case tc.want == "" && got != "":
			t.Errorf("%s(%q) = %q, want valid", name, tc.in, got)
		case tc.want != "" && !strings.Contains(got, tc.want):
			t.Errorf("%s(%q) = %q, want a message with %q", name, tc.in, got, tc.want)
		}
	}
}

func funcName(f any) string {
	return strings.TrimPrefix(runtimeFuncName(reflect.ValueOf(f).Pointer()), "github.com/braid-router/braid/api.")
}

func TestSuggest(t *testing.T) {
	for _, tc := range []struct {
		in         string
		candidates []string
		want       string
	}{
		{"prority", []string{"name", "priority", "table"}, "priority"},
		{"vendorclass", []string{"vendorClass", "clientID", "hostname"}, "vendorClass"},
		{"mptpc", []string{"mtu", "mptcp", "ipv4"}, "mptcp"},
		{"subflw", []string{"subflow", "backup", "off"}, "subflow"},
		{"Backup", []string{"subflow", "backup", "off"}, "backup"},
		{"chacha20", []string{"chacha20-ietf-poly1305", "aes-256-gcm", "aes-128-gcm"}, "chacha20-ietf-poly1305"},
		{"aes", []string{"chacha20-ietf-poly1305", "aes-256-gcm", "aes-128-gcm"}, ""},
		{"sctp", []string{"tcp", "udp"}, ""},
		{"x", []string{"tcp", "udp"}, ""},
		{"colour", []string{"name", "interface", "priority"}, ""},
		{"", []string{"a"}, ""},
		{"a", nil, ""},
	} {
		if got := suggest(tc.in, tc.candidates); got != tc.want {
			t.Errorf("suggest(%q, %v) = %q, want %q", tc.in, tc.candidates, got, tc.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 3},
		{"", "abc", 3},
		{"abc", "abc", 0},
		{"abc", "acb", 1}, // transposition
		{"prority", "priority", 1},
		{"kitten", "sitting", 3},
		{"ca", "abc", 3}, // optimal string alignment, not full Damerau
		{"été", "ete", 2},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestOneOf(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"a"}, "a"},
		{[]string{"a", "b"}, "a or b"},
		{[]string{"a", "b", "c"}, "a, b or c"},
	} {
		if got := oneOf(tc.in); got != tc.want {
			t.Errorf("oneOf(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestFieldTags checks every struct reachable from a document: tags name
// known formats, enums list values, and every field has a type the
// decoder and encoder handle, so a mistake in types.go fails here rather
// than at run time.
func TestFieldTags(t *testing.T) {
	ts := make(tables)
	seen := make(map[reflect.Type]bool)
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] || typ == rawSpecType {
			return
		}
		seen[typ] = true
		for _, f := range ts.of(typ).fields {
			where := typ.Name() + "." + f.name
			switch f.format {
			case "", "cidr", "ifaddr", "ip", "hostport", "ifname", "name", "duration", "resolver", "domain", "mac", "addrport":
			default:
				t.Errorf("%s: unknown format %q", where, f.format)
			}
			base := f.typ
			for base.Kind() == reflect.Pointer || base.Kind() == reflect.Slice {
				base = base.Elem()
			}
			switch base.Kind() {
			case reflect.String, reflect.Int, reflect.Bool, reflect.Struct:
			default:
				t.Errorf("%s: type %s is not supported", where, f.typ)
			}
			if (f.format != "" || len(f.enum) > 0) && base.Kind() != reflect.String {
				t.Errorf("%s: format or enum on a %s", where, f.typ)
			}
			for _, e := range f.enum {
				if e == "" {
					t.Errorf("%s: empty enum value", where)
				}
			}
			if f.secret && f.typ.Kind() != reflect.String {
				t.Errorf("%s: secret on a %s", where, f.typ)
			}
			walk(f.typ)
		}
	}
	for _, v := range []any{routerDocument{}, peerDocument{}, unknownDocument{}} {
		walk(reflect.TypeOf(v))
	}
	if len(seen) < 20 {
		t.Errorf("walked only %d types", len(seen))
	}
}

// TestSpecPath checks path helpers.
func TestSpecPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"spec.uplinks[1].ipv4.dhcp.vendorClass", "spec.uplinks[1].ipv4.dhcp"},
		{"spec.uplinks[1]", "spec.uplinks"},
		{"spec", ""},
		{"", ""},
	} {
		if got := parent(tc.in); got != tc.want {
			t.Errorf("parent(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := index(join(join("", "spec"), "uplinks"), 2); got != "spec.uplinks[2]" {
		t.Errorf("path = %q", got)
	}
}

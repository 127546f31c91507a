package nstest

import (
	"os/exec"
	"strings"
	"testing"
)

// NftLoad loads a ruleset into namespace ns with nft -f.
func NftLoad(t testing.TB, ns, ruleset string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s\n%s", err, out, ruleset)
	}
}

// NftTable returns `nft -j list table FAMILY NAME` in namespace ns, or ""
// when there is no such table.
func NftTable(t testing.TB, ns, family, name string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "-j", "list", "table", family, name).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "No such file or directory") {
			return ""
		}
		t.Fatalf("nft -j list table %s %s: %v\n%s", family, name, err, out)
	}
	return string(out)
}

// ForeignNftables is nftables state another program keeps: a table of its
// own (with a set, a counter and a comment, "theirs"), NAT in the ip
// family, and a table named braid in the ip family, which is not braid's.
const ForeignNftables = `
table inet foreign {
	set blocked { type ipv4_addr; elements = { 203.0.113.9 }; }
	chain input {
		type filter hook input priority 10; policy accept;
		ip saddr @blocked drop
		tcp dport 9 counter drop comment "theirs"
	}
}
table ip nat {
	chain postrouting {
		type nat hook postrouting priority 100;
		oifname "wan9" masquerade
	}
}
table ip braid {
	chain c {
		iifname "x" accept comment "lan"
	}
}
`

// LoadForeignNftables loads ForeignNftables into namespace ns, and returns
// a snapshot of it (its tables as nft -j lists them) for a test to compare
// before and after braid ran.
func LoadForeignNftables(t testing.TB, ns string) (snapshot func() string) {
	t.Helper()
	NftLoad(t, ns, ForeignNftables)
	return func() string {
		return NftTable(t, ns, "inet", "foreign") + NftTable(t, ns, "ip", "nat") + NftTable(t, ns, "ip", "braid")
	}
}

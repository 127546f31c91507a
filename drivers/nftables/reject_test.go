package nftables

import (
	"strings"
	"testing"

	"github.com/google/nftables/expr"
)

func TestRenderReject(t *testing.T) {
	exprsOf := func(stmts ...Stmt) []expr.Any {
		var out []expr.Any
		for _, s := range stmts {
			if s.err != nil {
				t.Fatal(s.err)
			}
			out = append(out, s.exprs...)
		}
		return out
	}
	// As nft 1.0.6 lists it.
	got := render(exprsOf(IIFName("lan0"), SrcPrefix(pfx("2001:db8:50::/64")), RejectICMPv6(ICMPv6PolicyFail)))
	if want := `iifname "lan0" ip6 saddr 2001:db8:50::/64 reject with icmpv6 policy-fail`; got != want {
		t.Errorf("render = %q, want %q", got, want)
	}
	// Without an IPv6 match before it, the code means something else (for
	// IPv4, code 5 is "source route failed"): written raw, never taken
	// for the IPv6 rule.
	for _, exprs := range [][]expr.Any{
		exprsOf(RejectICMPv6(ICMPv6PolicyFail)),
		exprsOf(SrcPrefix(pfx("192.0.2.0/24")), RejectICMPv6(ICMPv6PolicyFail)),
		{&expr.Reject{Type: 2, Code: 5}},
		{&expr.Reject{Type: 0, Code: 2}},
	} {
		if got := render(exprs); !strings.Contains(got, "[Reject{") {
			t.Errorf("render = %q, want the reject written raw", got)
		}
	}
	if s := RejectICMPv6(2); s.err == nil {
		t.Error("code 2 (beyond scope) is not a code nft names for reject")
	}
}

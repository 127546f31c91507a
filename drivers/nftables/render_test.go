package nftables

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
)

func TestRenderStatements(t *testing.T) {
	for _, tt := range []struct {
		stmts []Stmt
		want  string
	}{
		{[]Stmt{IIFName("lan0"), Accept()}, `iifname "lan0" accept`},
		{[]Stmt{IIFName("lan0"), OIFName("wan1"), Accept()}, `iifname "lan0" oifname "wan1" accept`},
		{[]Stmt{CtState(CtEstablished | CtRelated), Accept()}, `ct state established,related accept`},
		{[]Stmt{CtState(CtInvalid), Drop()}, `ct state invalid counter drop`},
		{[]Stmt{CtStatusDNAT(), Accept()}, `ct status dnat accept`},
		{[]Stmt{SrcPrefix(pfx("192.168.50.0/24")), Accept()}, `ip saddr 192.168.50.0/24 accept`},
		{[]Stmt{SrcPrefix(pfx("192.168.50.7/24")), Accept()}, `ip saddr 192.168.50.0/24 accept`},
		{[]Stmt{DstPrefix(pfx("192.0.2.1/32")), Accept()}, `ip daddr 192.0.2.1 accept`},
		{[]Stmt{SrcPrefix(pfx("0.0.0.0/0")), Accept()}, `meta nfproto ipv4 accept`},
		{[]Stmt{SrcPrefix(pfx("fe80::/10")), ICMPv6(ICMPv6MLDQuery), Accept()}, `ip6 saddr fe80::/10 icmpv6 type mld-listener-query accept`},
		{[]Stmt{DstPrefix(pfx("2001:db8:50::10/128")), DPort("tcp", 8080), Accept()}, `ip6 daddr 2001:db8:50::10 tcp dport 8080 accept`},
		{[]Stmt{SrcInSet("allow_v4", false), Accept()}, `ip saddr @allow_v4 accept`},
		{[]Stmt{DstInSet("egress_isp1_v6", true), SetMark(7101)}, `ip6 daddr @egress_isp1_v6 meta mark set 0x00001bbd`},
		{[]Stmt{CtState(CtNew), DstInSet("egress_isp1_v4", false), SetMark(7101), SetCtMark(7101)}, `ct state new ip daddr @egress_isp1_v4 meta mark set 0x00001bbd ct mark set 0x00001bbd`},
		{[]Stmt{CtMark(7101), RestoreMark()}, `ct mark 0x00001bbd meta mark set ct mark`},
		{[]Stmt{DPort("udp", 68), Accept()}, `udp dport 68 accept`},
		{[]Stmt{ICMP(ICMPEchoRequest), Accept()}, `icmp type echo-request accept`},
		{[]Stmt{ICMPv6(ICMPv6PacketTooBig), Accept()}, `icmpv6 type packet-too-big accept`},
		{[]Stmt{ICMPv6(200), Accept()}, `icmpv6 type 200 accept`},
		{[]Stmt{OIFName("wan1"), SrcPrefix(pfx("10.0.0.0/8")), Masquerade()}, `oifname "wan1" ip saddr 10.0.0.0/8 masquerade`},
		{[]Stmt{IIFName("wan1"), DPort("tcp", 8080), DNAT(netip.MustParseAddrPort("192.168.50.10:80"))}, `iifname "wan1" tcp dport 8080 dnat ip to 192.168.50.10:80`},
		{[]Stmt{IIFName("lan0"), DstPrefix(netip.MustParsePrefix("::/0")), DPort("udp", 53), {exprs: dnatExprs(netip.MustParseAddr("2001:db8:50::1"), 53, nfprotoIPv6)}}, `iifname "lan0" meta nfproto ipv6 udp dport 53 dnat ip6 to [2001:db8:50::1]:53`},
		{[]Stmt{IIFNameNot("lan0"), Return()}, `iifname != "lan0" return`},
		{[]Stmt{Marked(), Return()}, `meta mark != 0x00000000 return`},
		{[]Stmt{DstLocal(), Return()}, `fib daddr type local return`},
		{[]Stmt{DstNotUnicast(), Return()}, `fib daddr type != unicast return`},
		{[]Stmt{L4Proto("udp"), DstNotUnicast(), Return()}, `meta l4proto udp fib daddr type != unicast return`},
		{[]Stmt{IIFName("lan0"), DPort("udp", 443), RejectPortUnreachable()}, `iifname "lan0" udp dport 443 reject`},
		{[]Stmt{IIFName("lan0"), TProxy("udp", true, 7190), SetMark(7190)}, `iifname "lan0" meta l4proto udp tproxy ip6 to :7190 meta mark set 0x00001c16`},
		{[]Stmt{DstInSet("proxy_bypass_v4", false), Return()}, `ip daddr @proxy_bypass_v4 return`},
		{[]Stmt{IIFName("lan0"), TProxy("tcp", false, 7190), SetMark(7190)}, `iifname "lan0" meta l4proto tcp tproxy ip to :7190 meta mark set 0x00001c16`},
		{[]Stmt{IIFName("lan0"), TProxy("tcp", true, 7190), SetMark(7190)}, `iifname "lan0" meta l4proto tcp tproxy ip6 to :7190 meta mark set 0x00001c16`},
		{[]Stmt{TProxy("udp", false, 53)}, `meta l4proto udp tproxy ip to :53`},
		{[]Stmt{OIFName("sixpe"), TCPSyn(), SetMSS(1400)}, `oifname "sixpe" tcp flags syn tcp option maxseg size set 1400`},
	} {
		var exprs []expr.Any
		for _, s := range tt.stmts {
			if s.err != nil {
				t.Fatalf("%s: %v", tt.want, s.err)
			}
			exprs = append(exprs, s.exprs...)
		}
		if got := render(exprs); got != tt.want {
			t.Errorf("render = %q, want %q", got, tt.want)
		}
	}
}

// A match without the protocol match that gives its header a meaning is
// written raw, as nft does, and what braid does not know is written in
// full: two different rules never read the same.
func TestRenderIsFaithful(t *testing.T) {
	for _, tt := range []struct {
		exprs []expr.Any
		want  string
	}{
		{
			[]expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
				&expr.Cmp{Register: 1, Data: []byte{10, 0, 0, 1}},
				&expr.Verdict{Kind: expr.VerdictAccept},
			},
			"@nh,96,32 0x0a000001 accept",
		},
		{
			[]expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Register: 1, Data: []byte{0, 22}},
				&expr.Verdict{Kind: expr.VerdictDrop},
			},
			"@th,16,16 0x0016 drop",
		},
		{
			// nft's shorter load for a /24.
			[]expr.Any{
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Register: 1, Data: []byte{nfprotoIPv4}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 3},
				&expr.Cmp{Register: 1, Data: []byte{192, 168, 50}},
				&expr.Verdict{Kind: expr.VerdictAccept},
			},
			"ip saddr 192.168.50.0/24 accept",
		},
		{
			[]expr.Any{&expr.Log{Level: 4}, &expr.Verdict{Kind: expr.VerdictJump, Chain: "x"}},
			"[Log{Level:4 Flags:0 Key:0 Snaplen:0 Group:0 QThreshold:0 Data:[]}] jump x",
		},
		{
			[]expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte("eth")}, &expr.Counter{Packets: 9, Bytes: 99}},
			`iifname != "eth*" counter`,
		},
		{
			// tproxy to an address, and to either family.
			[]expr.Any{
				&expr.Immediate{Register: 1, Data: []byte{127, 0, 0, 1}},
				&expr.Immediate{Register: 2, Data: []byte{0x1c, 0x16}},
				&expr.TProxy{Family: nfprotoIPv4, RegAddr: 1, RegPort: 2},
				&expr.Immediate{Register: 3, Data: netip.MustParseAddr("::1").AsSlice()},
				&expr.TProxy{Family: nfprotoIPv6, RegAddr: 3},
				&expr.TProxy{Family: 0, RegPort: 2},
			},
			`tproxy ip to 127.0.0.1:7190 tproxy ip6 to [::1] tproxy to :7190`,
		},
		{
			// A tproxy whose registers hold nothing braid can name.
			[]expr.Any{&expr.TProxy{Family: nfprotoIPv4, RegPort: 3}},
			`[TProxy{Family:2 TableFamily:0 RegAddr:0 RegPort:3}]`,
		},
		{
			[]expr.Any{&expr.Fib{Register: 1, FlagSADDR: true, FlagIIF: true, ResultOIF: true}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 0, 0, 0}}, &expr.Verdict{Kind: expr.VerdictDrop}},
			`fib saddr . iif oif 0x00000000 drop`,
		},
		{
			[]expr.Any{&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true}, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{5, 0, 0, 0}}},
			`fib daddr type != multicast`,
		},
		{
			// An expression braid has no type for, read from the kernel:
			// what it loads is unknown, so the comparison after it is
			// written out too.
			[]expr.Any{
				&undecoded{name: "xfrm", data: []byte{0, 8, 0, 1}},
				&expr.Cmp{Register: 1, Data: []byte{1, 0, 0, 0}},
				&expr.Verdict{Kind: expr.VerdictAccept},
			},
			`[xfrm 00080001] [Cmp{Op:0 Register:1 Data:[1 0 0 0]}] accept`,
		},
	} {
		if got := render(tt.exprs); got != tt.want {
			t.Errorf("render = %q, want %q", got, tt.want)
		}
	}
}

// FuzzRender builds expression lists from bytes (rules someone else may
// have put in braid's table reach render from the kernel): render never
// panics, and lists that differ render differently when they differ in a
// field render shows.
func FuzzRender(f *testing.F) {
	f.Add([]byte{0, 1, 1, 2, 1, 2, 3, 1, 12, 4, 4, 1, 4, 10, 0, 0, 1})
	f.Add([]byte{1, 0, 0, 5, 1, 3, 255, 255, 0, 0, 2, 1, 6, 1, 2, 8, 8})
	f.Add(append([]byte{2, 2, 1, 0, 0, 5, 1}, []byte{2, 2, 1, 0, 0, 5, 2}...))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Two lists from the two halves: if they render the same, they
		// must be the same rule. This is what makes drift detection by
		// rule text sound: a rule changed by hand in braid's table must
		// not pass for braid's own.
		half := len(b) / 2
		x, y := fuzzExprs(b[:half]), fuzzExprs(b[half:])
		sx, sy := render(x), render(y)
		for _, s := range []string{sx, sy} {
			if strings.ContainsRune(s, '\n') {
				t.Errorf("multi-line rendering %q", s)
			}
		}
		if sx == sy && !reflect.DeepEqual(x, y) {
			t.Errorf("two different rules render the same, %q:\n%s\n%s", sx, dumpExprs(x), dumpExprs(y))
		}
		// And a list always renders as itself.
		if again := render(fuzzExprs(b[:half])); again != sx {
			t.Errorf("rendering is not deterministic: %q then %q", sx, again)
		}
	})
}

func dumpExprs(es []expr.Any) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%T%+v ", e, e)
	}
	return b.String()
}

// fuzzExprs decodes bytes into expressions of the kinds render knows,
// with registers and data lengths left to chance.
func fuzzExprs(b []byte) []expr.Any {
	var out []expr.Any
	next := func() byte {
		if len(b) == 0 {
			return 0
		}
		c := b[0]
		b = b[1:]
		return c
	}
	data := func() []byte {
		n := int(next() % 20)
		d := make([]byte, 0, n)
		for range n {
			d = append(d, next())
		}
		return d
	}
	for len(b) > 0 && len(out) < 32 {
		reg := uint32(next() % 4)
		switch next() % 16 {
		case 0:
			out = append(out, &expr.Meta{Key: expr.MetaKey(next() % 20), Register: reg, SourceRegister: next()%4 == 0})
		case 1:
			out = append(out, &expr.Payload{DestRegister: reg, Base: expr.PayloadBase(next() % 3), Offset: uint32(next() % 40), Len: uint32(next() % 20)})
		case 2:
			out = append(out, &expr.Cmp{Op: expr.CmpOp(next() % 7), Register: reg, Data: data()})
		case 3:
			out = append(out, &expr.Bitwise{SourceRegister: reg, DestRegister: uint32(next() % 4), Len: uint32(next() % 20), Mask: data(), Xor: data()})
		case 4:
			out = append(out, &expr.Ct{Register: reg, Key: expr.CtKey(next() % 10), SourceRegister: next()%4 == 0})
		case 5:
			out = append(out, &expr.Immediate{Register: reg, Data: data()})
		case 6:
			out = append(out, &expr.Lookup{SourceRegister: reg, SetName: string(data()), Invert: next()%2 == 0})
		case 7:
			out = append(out, &expr.Verdict{Kind: expr.VerdictKind(int64(next()%8) - 5), Chain: string(data())})
		case 8:
			out = append(out, &expr.NAT{Type: expr.NATType(next() % 3), Family: uint32(next() % 12), RegAddrMin: reg, RegAddrMax: uint32(next() % 4), RegProtoMin: uint32(next() % 4), RegProtoMax: uint32(next() % 4)})
		case 9:
			out = append(out, &expr.Masq{Random: next()%2 == 0})
		case 10:
			out = append(out, &expr.Counter{})
		case 11:
			out = append(out, &expr.TProxy{Family: next() % 12, RegAddr: uint32(next() % 4), RegPort: uint32(next() % 4)})
		case 12:
			b := next()
			out = append(out, &expr.Fib{Register: reg, FlagSADDR: b&1 != 0, FlagDADDR: b&2 != 0, FlagMARK: b&4 != 0, FlagIIF: b&8 != 0, FlagOIF: b&16 != 0, FlagPRESENT: b&32 != 0,
				ResultOIF: b&64 != 0, ResultOIFNAME: b&128 != 0, ResultADDRTYPE: next()%2 == 0})
		case 13:
			out = append(out, &undecoded{name: string(data()), data: data()})
		case 14:
			out = append(out, &expr.Reject{Type: uint32(next() % 3), Code: next() % 8})
		default:
			out = append(out, &expr.Log{Level: expr.LogLevel(next())})
		}
	}
	return out
}

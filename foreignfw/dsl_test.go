package foreignfw

import (
	"net/netip"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// A small language for building rules in tests, in the expressions nft
// and iptables-nft write.

type x = []expr.Any

func rule(text string, parts ...x) Rule {
	var es []expr.Any
	for _, p := range parts {
		es = append(es, p...)
	}
	return Rule{Text: text, Exprs: es}
}

func iif(name string) x {
	return x{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(name)}}
}

func oif(name string) x {
	return x{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(name)}}
}

// oifNot is iptables-nft's "! -o NAME": the name and its NUL only.
func oifNot(name string) x {
	return x{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: append([]byte(name), 0)}}
}

// iifXT is iptables-nft's "-i NAME".
func iifXT(name string) x {
	return x{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: append([]byte(name), 0)}}
}

func ctState(bits uint32) x {
	return x{&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: hostU32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)}}
}

func ctStatusDNAT() x {
	return x{&expr.Ct{Key: expr.CtKeySTATUS, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: hostU32(StatusDNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)}}
}

func l4(p uint8) x {
	return x{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}}}
}

func dport(p uint8, port uint16) x {
	return append(l4(p), &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(port)})
}

// saddr4 matches an IPv4 source prefix, loading only the bytes it needs
// as nft does.
func saddr4(p string) x {
	pf := netip.MustParsePrefix(p)
	n := uint32((pf.Bits() + 7) / 8)
	out := x{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: n}}
	data := pf.Addr().AsSlice()[:n]
	if pf.Bits()%8 != 0 {
		mask := make([]byte, n)
		for i := 0; i < pf.Bits(); i++ {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)})
	}
	return append(out, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data})
}

func fibDaddrType(t uint32) x {
	return x{&expr.Fib{Register: 1, ResultADDRTYPE: true, FlagDADDR: true}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: hostU32(t)}}
}

func counter() x      { return x{&expr.Counter{}} }
func accept() x       { return x{&expr.Verdict{Kind: expr.VerdictAccept}} }
func drop() x         { return x{&expr.Verdict{Kind: expr.VerdictDrop}} }
func ret() x          { return x{&expr.Verdict{Kind: expr.VerdictReturn}} }
func jump(c string) x { return x{&expr.Verdict{Kind: expr.VerdictJump, Chain: c}} }
func goTo(c string) x { return x{&expr.Verdict{Kind: expr.VerdictGoto, Chain: c}} }
func reject() x       { return x{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH}} }
func limit(over bool) x {
	return x{&expr.Limit{Type: expr.LimitTypePkts, Rate: 3, Unit: expr.LimitTimeMinute, Over: over}}
}

// conntrackXT is iptables-nft's "-m conntrack --ctstate STATES".
func conntrackXT(state uint16) x {
	info := &xt.ConntrackMtinfo3{}
	info.MatchFlags = uint16(xt.ConntrackState)
	info.StateMask = state
	return x{&expr.Match{Name: "conntrack", Rev: 3, Info: info}}
}

func xtRawMatch(name string, rev uint32, data []byte) x {
	info := xt.Unknown(data)
	return x{&expr.Match{Name: name, Rev: rev, Info: &info}}
}

// vmapIIF is "iifname vmap @SET".
func vmapIIF(set string) x {
	return x{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Lookup{SourceRegister: 1, SetName: set, IsDestRegSet: true, DestRegister: 0}}
}

func base(name, hook string, prio int, policy string, rules ...Rule) Chain {
	return Chain{Name: name, Hook: hook, Type: "filter", Priority: prio, Policy: policy, Rules: rules}
}

func regular(name string, rules ...Rule) Chain { return Chain{Name: name, Rules: rules} }

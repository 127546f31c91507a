package foreignfw

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// iptables-nft writes what nftables has no native expression for as xt
// matches and targets: the x_tables extension by name, with its own
// binary structure. braid models the ones Docker, ufw and common
// hardening guides leave on a box; any other is Maybe (a match) or
// Unknown (a target), never a pass.

// Conntrack states of xt_conntrack and xt_state (XT_CONNTRACK_STATE_*):
// the same bits as nft's ct state for invalid, established, related and
// new; untracked and the NAT pseudo-states differ.
const (
	xtStateSNAT      = 1 << 8
	xtStateDNAT      = 1 << 9
	xtStateUntracked = 1 << 10
)

// xtMatch evaluates an xt match for p at hook.
func xtMatch(p *Packet, hook string, prio int, m *expr.Match) (Tri, string) {
	unmodelled := func(what string) (Tri, string) {
		return Maybe, fmt.Sprintf("xt match %q (%s), which braid does not model", m.Name, what)
	}
	switch info := m.Info.(type) {
	case *xt.Comment:
		return True, ""
	case *xt.ConntrackMtinfo1:
		return conntrackMatch(p, &info.ConntrackMtinfoBase, uint16(info.StateMask), uint16(info.StatusMask))
	case *xt.ConntrackMtinfo2:
		return conntrackMatch(p, &info.ConntrackMtinfoBase, info.StateMask, info.StatusMask)
	case *xt.ConntrackMtinfo3:
		return conntrackMatch(p, &info.ConntrackMtinfoBase, info.StateMask, info.StatusMask)
	case *xt.AddrType:
		flags := uint32(0)
		if info.InvertSource {
			flags |= 1
		}
		if info.InvertDest {
			flags |= 2
		}
		return addrTypeMatch(p, hook, prio, info.Source, info.Dest, flags), ""
	case *xt.AddrTypeV1:
		if info.Flags&(4|8) != 0 {
			return unmodelled("limited to an interface")
		}
		return addrTypeMatch(p, hook, prio, info.Source, info.Dest, uint32(info.Flags)), ""
	case *xt.Tcp:
		if p.L4 != ProtoTCP {
			return False, ""
		}
		if info.Option != 0 {
			return unmodelled("a TCP option")
		}
		t := portsIn(p, hook, info.SrcPorts, info.DstPorts, uint8(info.InvFlags)&1 != 0, uint8(info.InvFlags)&2 != 0)
		if info.FlagsMask != 0 {
			f := p.TCPFlags
			if f.Len() != 1 {
				f = Top(1)
			}
			ft := f.and([]byte{info.FlagsMask}, []byte{0}).cmp(opEq, []byte{info.FlagsCmp})
			if uint8(info.InvFlags)&4 != 0 {
				ft = ft.Not()
			}
			t = and(t, ft)
		}
		return t, whyIf(t, "xt match \"tcp\" that holds for some of these packets only")
	case *xt.Udp:
		if p.L4 != ProtoUDP {
			return False, ""
		}
		t := portsIn(p, hook, info.SrcPorts, info.DstPorts, uint8(info.InvFlags)&1 != 0, uint8(info.InvFlags)&2 != 0)
		return t, whyIf(t, "xt match \"udp\" that holds for some of these packets only")
	case *xt.Unknown:
		t, ok := xtRaw(p, m.Name, m.Rev, *info)
		if !ok {
			return unmodelled("or its data braid could not read")
		}
		return t, whyIf(t, fmt.Sprintf("xt match %q that holds for some of these packets only", m.Name))
	}
	return unmodelled("its data")
}

// xtRaw evaluates the xt matches whose data google/nftables leaves raw;
// false for one braid does not model or data it cannot read.
func xtRaw(p *Packet, name string, rev uint32, b []byte) (Tri, bool) {
	switch name {
	case "limit":
		return True, true // assumed within its rate
	case "state":
		if len(b) < 4 {
			return Maybe, false
		}
		return triOf(xtState(p)&binary.NativeEndian.Uint32(b) != 0), true
	case "icmp", "icmp6":
		// struct ipt_icmp, ip6t_icmp: type, code range, invert flags.
		if len(b) < 4 {
			return Maybe, false
		}
		want := ProtoICMP
		if name == "icmp6" {
			want = ProtoICMPv6
		}
		if p.L4 != want {
			return False, true
		}
		hit := (b[0] == 0xff || b[0] == p.ICMPType) && p.ICMPCode >= b[1] && p.ICMPCode <= b[2]
		if b[3]&1 != 0 {
			hit = !hit
		}
		return triOf(hit), true
	case "hl", "ttl":
		// struct ip6t_hl_info, ipt_ttl_info: mode, value.
		if len(b) < 2 {
			return Maybe, false
		}
		hop := p.HopLimit
		if hop.Len() != 1 {
			hop = Top(1)
		}
		v := []byte{b[1]}
		switch b[0] {
		case 0:
			return hop.cmp(opEq, v), true
		case 1:
			return hop.cmp(opNeq, v), true
		case 2:
			return hop.cmp(opLt, v), true
		case 3:
			return hop.cmp(opGt, v), true
		}
		return Maybe, false
	case "rt":
		// A routing header: braid's packets carry none, and without one
		// the match fails whatever its inversion.
		return False, true
	case "pkttype":
		// struct xt_pkttype_info: int pkttype, int invert.
		if len(b) < 8 {
			return Maybe, false
		}
		want := uint32(unix.PACKET_HOST)
		if p.Multicast {
			want = unix.PACKET_MULTICAST
		}
		hit := binary.NativeEndian.Uint32(b[0:4]) == want
		if binary.NativeEndian.Uint32(b[4:8]) != 0 {
			hit = !hit
		}
		return triOf(hit), true
	case "multiport":
		return multiport(p, rev, b)
	}
	return Maybe, false
}

// multiport evaluates xt_multiport_v1: flags (source, destination or
// either), count, 15 ports, 15 range flags, invert.
func multiport(p *Packet, rev uint32, b []byte) (Tri, bool) {
	if rev != 1 || len(b) < 48 {
		return Maybe, false
	}
	if p.L4 != ProtoTCP && p.L4 != ProtoUDP {
		return False, true
	}
	flags, count := b[0], int(b[1])
	if count > 15 || flags > 2 {
		return Maybe, false
	}
	h := p.Routed
	in := func(v Value) Tri {
		out := False
		for i := 0; i < count; i++ {
			lo := binary.NativeEndian.Uint16(b[2+2*i:])
			hi := lo
			if b[32+i] != 0 && i+1 < count {
				hi = binary.NativeEndian.Uint16(b[2+2*(i+1):])
				i++
			}
			switch v.in(be16(lo), be16(hi)) {
			case True:
				return True
			case Maybe:
				out = Maybe
			}
		}
		return out
	}
	var t Tri
	switch flags {
	case 0: // XT_MULTIPORT_SOURCE
		t = in(h.Sport)
	case 1: // XT_MULTIPORT_DESTINATION
		t = in(h.Dport)
	default: // XT_MULTIPORT_EITHER
		t = or(in(h.Sport), in(h.Dport))
	}
	if b[47] != 0 {
		t = t.Not()
	}
	return t, true
}

// xtTarget evaluates an xt target.
func xtTarget(t *expr.Target, st *state) step {
	switch t.Name {
	case "LOG", "NFLOG", "ULOG", "TCPMSS", "TCPOPTSTRIP", "CHECKSUM", "CLASSIFY", "DSCP", "TOS", "TTL", "HL", "CT", "NOTRACK", "AUDIT", "TRACE":
		return on()
	case "MARK", "CONNMARK":
		st.mark = Top(4)
		return on()
	case "REJECT":
		return step{kind: stepVerdict, verdict: expr.VerdictDrop, reject: true}
	case "MASQUERADE", "SNAT", "NETMAP":
		return step{kind: stepVerdict, verdict: expr.VerdictAccept}
	case "DNAT", "REDIRECT", "TPROXY":
		return unknown(fmt.Sprintf("xt target %q, which would send it elsewhere", t.Name))
	}
	return unknown(fmt.Sprintf("xt target %q, which braid does not model", t.Name))
}

// xtState is p's state as xt_conntrack and xt_state number it.
func xtState(p *Packet) uint32 {
	s := p.State & (CtInvalid | CtEstablished | CtRelated | CtNew)
	if p.State == CtUntracked {
		s = xtStateUntracked
	}
	if p.Routed.Status&StatusSNAT != 0 {
		s |= xtStateSNAT
	}
	if p.Routed.Status&StatusDNAT != 0 {
		s |= xtStateDNAT
	}
	return s
}

// conntrackMatch evaluates xt_conntrack's state, status and direction;
// other criteria are not modelled.
func conntrackMatch(p *Packet, b *xt.ConntrackMtinfoBase, state, status uint16) (Tri, string) {
	flags, inv := b.MatchFlags, b.InvertFlags
	known := xt.ConntrackState | xt.ConntrackStatus | xt.ConntrackDirection | xt.ConntrackStateAlias
	if xt.ConntrackFlags(flags)&^known != 0 {
		return Maybe, "xt match \"conntrack\" on more than state, status and direction, which braid does not model"
	}
	t := True
	if xt.ConntrackFlags(flags)&xt.ConntrackState != 0 {
		hit := xtState(p)&uint32(state) != 0
		if xt.ConntrackFlags(inv)&xt.ConntrackState != 0 {
			hit = !hit
		}
		t = and(t, triOf(hit))
	}
	if xt.ConntrackFlags(flags)&xt.ConntrackStatus != 0 {
		st := Point(hostU32(p.Routed.Status))
		if p.State != CtNew {
			st = Points(hostU32(p.Routed.Status), hostU32(p.Routed.Status|StatusAssured))
		}
		mask := hostU32(uint32(status))
		ht := st.and(mask, make([]byte, 4)).cmp(opNeq, make([]byte, 4))
		if xt.ConntrackFlags(inv)&xt.ConntrackStatus != 0 {
			ht = ht.Not()
		}
		t = and(t, ht)
	}
	if xt.ConntrackFlags(flags)&xt.ConntrackDirection != 0 {
		// XT_CONNTRACK_DIRECTION inverted means the reply direction.
		hit := !p.Reply
		if xt.ConntrackFlags(inv)&xt.ConntrackDirection != 0 {
			hit = p.Reply
		}
		t = and(t, triOf(hit))
	}
	return t, whyIf(t, "xt match \"conntrack\" that holds for some of these packets only")
}

// addrTypeMatch evaluates xt_addrtype: the route types of the source and
// destination (masks of 1 << RTN_*), inverted by flags 1 and 2.
func addrTypeMatch(p *Packet, hook string, prio int, src, dst uint16, flags uint32) Tri {
	srcType, dstType := uint(unix.RTN_UNICAST), uint(unix.RTN_UNICAST)
	switch {
	case p.Multicast:
		dstType = unix.RTN_MULTICAST
	case p.Path == ToBox || p.preLocal(hook, prio):
		dstType = unix.RTN_LOCAL
	}
	if p.Path == FromBox {
		srcType = unix.RTN_LOCAL
	}
	t := True
	if src != 0 {
		hit := src&(1<<srcType) != 0
		if flags&1 != 0 {
			hit = !hit
		}
		t = and(t, triOf(hit))
	}
	if dst != 0 {
		hit := dst&(1<<dstType) != 0
		if flags&2 != 0 {
			hit = !hit
		}
		t = and(t, triOf(hit))
	}
	return t
}

// portsIn matches source and destination port ranges, each inverted.
func portsIn(p *Packet, hook string, src, dst [2]uint16, invSrc, invDst bool) Tri {
	h := p.Routed
	st := h.Sport.in(be16(src[0]), be16(src[1]))
	if invSrc {
		st = st.Not()
	}
	dt := h.Dport.in(be16(dst[0]), be16(dst[1]))
	if invDst {
		dt = dt.Not()
	}
	return and(st, dt)
}

func and(a, b Tri) Tri {
	switch {
	case a == False || b == False:
		return False
	case a == True && b == True:
		return True
	}
	return Maybe
}

func or(a, b Tri) Tri {
	switch {
	case a == True || b == True:
		return True
	case a == False && b == False:
		return False
	}
	return Maybe
}

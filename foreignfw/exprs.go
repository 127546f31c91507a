package foreignfw

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// expr evaluates one expression that is not a verdict.
func (e *evaluator) expr(c *walkCtx, x expr.Any, st *state) step {
	p := c.p
	switch x := x.(type) {
	case *expr.Meta:
		if x.SourceRegister {
			if x.Key == expr.MetaKeyMARK {
				v := e.readReg(st, x.Register, 4)
				if len(st.pending) > 0 {
					v = Union(v, st.mark)
				}
				st.mark = v
			}
			return on() // priority, nftrace, pkttype...: nothing braid models
		}
		v, ok := metaValue(p, c.hook, x.Key, st)
		if !ok {
			return match(False, "")
		}
		return e.load(st, x.Register, v)
	case *expr.Payload:
		if x.OperationType != expr.PayloadLoad {
			return on() // a header rewrite: the packet goes on
		}
		return e.load(st, x.DestRegister, payloadValue(p, c.hook, c.base.Priority, x.Base, int(x.Offset), int(x.Len)))
	case *expr.Ct:
		if x.SourceRegister {
			return on() // ct mark set, ct helper set...
		}
		return e.load(st, x.Register, ctValue(p, c.hook, c.base.Priority, x))
	case *expr.Immediate:
		if x.Register == 0 {
			return unknown("an immediate verdict braid cannot read")
		}
		return e.load(st, x.Register, Point(x.Data))
	case *expr.Bitwise:
		v := e.readReg(st, x.SourceRegister, int(x.Len))
		return e.load(st, x.DestRegister, v.and(x.Mask, x.Xor))
	case *expr.Cmp:
		v := e.readReg(st, x.Register, len(x.Data))
		t := v.cmp(cmpOp(x.Op), x.Data)
		return match(t, partly(t, x))
	case *expr.Range:
		v := e.readReg(st, x.Register, len(x.FromData))
		t := v.in(x.FromData, x.ToData)
		if x.Op == expr.CmpOpNeq {
			t = t.Not()
		}
		return match(t, partly(t, x))
	case *expr.Lookup:
		return e.lookup(c, x, st)
	case *expr.Fib:
		v, ok := fibValue(p, c.hook, c.base.Priority, x)
		if !ok {
			return match(False, "")
		}
		return e.load(st, x.Register, v)
	case *expr.Counter, *expr.Log, *expr.Notrack, *expr.FlowOffload, *expr.Dup,
		*expr.CtHelper, *expr.CtTimeout, *expr.CtExpect, *expr.SecMark:
		return on()
	case *expr.Objref:
		if x.Type == 1 { // NFT_OBJECT_COUNTER
			return on()
		}
		return match(Maybe, fmt.Sprintf("a named object of type %d, which braid does not model", x.Type))
	case *expr.Limit:
		// Assumed within its rate: "over" never holds, the rest does.
		return match(triOf(!x.Over), "")
	case *expr.Quota:
		return match(triOf(!x.Over), "")
	case *expr.Connlimit:
		return match(Maybe, "connlimit, which depends on the connections at the time")
	case *expr.Dynset:
		if len(x.Exprs) > 0 {
			return match(Maybe, "a set update with its own statements ("+describe(x.Exprs[0])+")")
		}
		return on()
	case *expr.Numgen, *expr.Hash:
		var reg uint32
		switch x := x.(type) {
		case *expr.Numgen:
			reg = x.Register
		case *expr.Hash:
			reg = x.DestRegister
		}
		return e.load(st, reg, Top(4))
	case *expr.Rt:
		return e.load(st, x.Register, Top(16))
	case *expr.Exthdr:
		if x.DestRegister == 0 {
			return on() // an option rewrite
		}
		if x.Flags&unix.NFT_EXTHDR_F_PRESENT != 0 && x.Op == expr.ExthdrOpIpv6 {
			// braid's packets carry no IPv6 extension headers.
			return e.load(st, x.DestRegister, Point([]byte{0}))
		}
		return e.load(st, x.DestRegister, Top(int(x.Len)))
	case *expr.Socket:
		if p.Path == Forwarded {
			return match(False, "") // a forwarded packet has no socket
		}
		return e.load(st, x.Register, Top(4))
	case *expr.Reject:
		return step{kind: stepVerdict, verdict: expr.VerdictDrop, reject: true}
	case *expr.Masq:
		// Source NAT rewrites; the packet goes through (a NAT statement
		// ends the chain with accept).
		return step{kind: stepVerdict, verdict: expr.VerdictAccept}
	case *expr.NAT:
		if fam := Family(x.Family); fam != FamilyINet && fam != 0 && fam != p.Family() {
			return on() // NAT of the other family does nothing to it
		}
		if x.Type == expr.NATTypeSourceNAT {
			return step{kind: stepVerdict, verdict: expr.VerdictAccept}
		}
		if e.dnatAsPlanned(p, c.hook, x, st) {
			// It sends the packet where the flow goes anyway (a port
			// forward's own translation).
			return step{kind: stepVerdict, verdict: expr.VerdictAccept}
		}
		return unknown("a destination NAT rule, which would send it elsewhere")
	case *expr.Redir:
		return unknown("a redirect to the box itself, which would send it elsewhere")
	case *expr.TProxy:
		if fam := Family(x.Family); fam != 0 && fam != p.Family() {
			return match(False, "") // the kernel breaks the rule
		}
		return unknown("a transparent proxy rule, which would send it elsewhere")
	case *expr.Queue:
		return unknown("a queue to a program, which decides")
	case *expr.SynProxy:
		return unknown("synproxy, which braid does not model")
	case *expr.Match:
		t, why := xtMatch(p, c.hook, c.base.Priority, x)
		return match(t, why)
	case *expr.Target:
		return xtTarget(x, st)
	case *Opaque:
		// What it leaves in the registers is unknown.
		st.regs = nil
		switch x.Name {
		case "rt", "byteorder", "hash", "numgen":
			// Computations into a register that never end a rule.
			return on()
		case "socket", "osf", "xfrm", "exthdr", "fib", "meta", "ct", "payload":
			// Loads that may end the rule (no socket, no header).
			return match(Maybe, describe(x)+", which braid cannot decode")
		}
		// It may match or decide: braid cannot say.
		return unknown(describe(x) + ", which braid cannot decode")
	}
	st.regs = nil
	return unknown(describe(x) + ", which braid does not model")
}

// dnatAsPlanned reports whether a destination NAT translates p to where it
// is routed anyway: the address and port of its routed header.
func (e *evaluator) dnatAsPlanned(p *Packet, hook string, x *expr.NAT, st *state) bool {
	if hook != HookPrerouting || !p.Pre.set || x.RegAddrMin == 0 || x.Prefix {
		return false
	}
	want, ok := p.Routed.Dst.point()
	if !ok {
		return false
	}
	addr, ok := e.readReg(st, x.RegAddrMin, len(want)).point()
	if !ok || !bytes.Equal(addr, want) {
		return false
	}
	if x.RegAddrMax != 0 && x.RegAddrMax != x.RegAddrMin {
		if hi, ok := e.readReg(st, x.RegAddrMax, len(want)).point(); !ok || !bytes.Equal(hi, want) {
			return false
		}
	}
	if x.RegProtoMin == 0 {
		return samePorts(p)
	}
	port, ok := p.Routed.Dport.point()
	if !ok {
		return false
	}
	got, ok := e.readReg(st, x.RegProtoMin, 2).point()
	return ok && bytes.Equal(got, port)
}

// samePorts reports whether a packet keeps its destination port across
// destination NAT.
func samePorts(p *Packet) bool {
	a, ok1 := p.Pre.Dport.point()
	b, ok2 := p.Routed.Dport.point()
	return ok1 && ok2 && bytes.Equal(a, b)
}

func triOf(b bool) Tri {
	if b {
		return True
	}
	return False
}

// partly says why a comparison held only maybe: it holds for some of the
// flow's packets only, or compares what braid does not model.
func partly(t Tri, x expr.Any) string {
	if t != Maybe {
		return ""
	}
	return "a " + describe(x) + " that holds for some of these packets only, or on a field braid does not model"
}

// load stores v in register reg.
func (e *evaluator) load(st *state, reg uint32, v Value) step {
	off, ok := regOffset(reg)
	if !ok || off+v.Len() > regFileLen {
		st.regs = nil
		return unknown(fmt.Sprintf("a load into register %d", reg))
	}
	st.regs = st.regs.write(off, v)
	return on()
}

// readReg reads n bytes from register reg.
func (e *evaluator) readReg(st *state, reg uint32, n int) Value {
	off, ok := regOffset(reg)
	if !ok || off+n > regFileLen {
		return Top(n)
	}
	return join(st.regs.read(off, n))
}

// lookup evaluates a set lookup: a match (is the key in the set?), a map
// (load its data), or a verdict map (each verdict the key may meet).
func (e *evaluator) lookup(c *walkCtx, x *expr.Lookup, st *state) step {
	set := c.t.set(x.SetName, x.SetID)
	if set == nil || set.KeyLen <= 0 {
		name := x.SetName
		if name == "" {
			name = fmt.Sprint(x.SetID)
		}
		return match(Maybe, "a lookup in set "+name+", which braid could not read")
	}
	off, ok := regOffset(x.SourceRegister)
	if !ok || off+set.KeyLen > regFileLen {
		return match(Maybe, "a lookup braid cannot follow")
	}
	segs := st.regs.read(off, set.KeyLen)
	why := "a lookup in set " + set.Name + " that holds for some of these packets only"
	if !x.IsDestRegSet {
		t := setHas(set, segs)
		if x.Invert {
			t = t.Not()
		}
		return match(t, whyIf(t, why))
	}
	// A map: which elements may the key meet?
	var hits []*Element
	covered := False
	for i := range set.Elements {
		el := &set.Elements[i]
		switch t := elementHas(el, segs); t {
		case True:
			hits, covered = []*Element{el}, True
		case Maybe:
			hits = append(hits, el)
			covered = Maybe
		}
		if covered == True {
			break
		}
	}
	if x.DestRegister == 0 {
		if !set.VerdictMap {
			return unknown("a verdict lookup in a map of data")
		}
		var forks []vmapFork
		for _, el := range hits {
			if el.Verdict == nil {
				continue
			}
			f := vmapFork{v: *el.Verdict}
			if covered != True {
				f.why = why
			}
			forks = append(forks, f)
		}
		if covered != True {
			f := vmapFork{none: true}
			if len(hits) > 0 {
				f.why = why
			}
			forks = append(forks, f)
		}
		return step{kind: stepFork, forks: forks}
	}
	// A map of data: its value, or any value where the key may meet
	// several elements.
	var v Value
	n := 0
	for _, el := range hits {
		if el.Data != nil {
			n = len(el.Data)
			v = Union(append([]Value{Point(el.Data)}, nonEmpty(v)...)...)
		}
	}
	if n == 0 {
		return match(covered, whyIf(covered, why))
	}
	if s := e.load(st, x.DestRegister, v); s.kind != stepOn {
		return s
	}
	return match(covered, whyIf(covered, why))
}

func nonEmpty(v Value) []Value {
	if v.Empty() {
		return nil
	}
	return []Value{v}
}

func whyIf(t Tri, why string) string {
	if t == Maybe {
		return why
	}
	return ""
}

// setHas says whether the key (as register segments) is in the set.
func setHas(set *Set, segs []Value) Tri {
	out := False
	for i := range set.Elements {
		switch elementHas(&set.Elements[i], segs) {
		case True:
			return True
		case Maybe:
			out = Maybe
		}
	}
	return out
}

// elementHas says whether the key (as segments, each a field of a
// concatenation or a part of one) falls within the element: True when
// every segment does, False when a segment cannot.
func elementHas(el *Element, segs []Value) Tri {
	hi := el.KeyEnd
	if hi == nil {
		hi = el.Key
	}
	total := 0
	for _, s := range segs {
		total += s.Len()
	}
	if len(el.Key) != total || len(hi) != total {
		return Maybe
	}
	out, at := True, 0
	for _, s := range segs {
		lo, h := el.Key[at:at+s.Len()], hi[at:at+s.Len()]
		at += s.Len()
		if len(segs) > 1 && el.KeyEnd != nil && !bytes.Equal(lo, h) {
			// A range over a concatenation is a range per field, which
			// only holds if the segments are the fields.
			if s.in(lo, h) == False {
				return False
			}
			out = Maybe
			continue
		}
		switch s.in(lo, h) {
		case False:
			return False
		case Maybe:
			out = Maybe
		}
	}
	return out
}

// metaValue is what meta KEY loads for p at hook; false when the kernel
// would end the rule (an interface the packet has not got there).
func metaValue(p *Packet, hook string, key expr.MetaKey, st *state) (Value, bool) {
	iif := p.IIF != "" && hook != HookOutput
	oif := p.OIF != "" && hook != HookPrerouting && hook != HookInput
	switch key {
	case expr.MetaKeyIIFNAME:
		if !iif {
			return Value{}, false
		}
		return Point(ifname(p.IIF)), true
	case expr.MetaKeyOIFNAME:
		if !oif {
			return Value{}, false
		}
		return Point(ifname(p.OIF)), true
	case expr.MetaKeyIIF:
		if !iif {
			return Value{}, false
		}
		return index(p.iifIndex), true
	case expr.MetaKeyOIF:
		if !oif {
			return Value{}, false
		}
		return index(p.oifIndex), true
	case expr.MetaKeyNFPROTO:
		return Byte(byte(p.Family())), true
	case expr.MetaKeyL4PROTO:
		return Byte(p.L4), true
	case expr.MetaKeyPROTOCOL:
		if p.IPv6 {
			return Point([]byte{0x86, 0xdd}), true
		}
		return Point([]byte{0x08, 0x00}), true
	case expr.MetaKeyMARK:
		return st.mark, true
	case expr.MetaKeyPKTTYPE:
		if p.Multicast {
			return Byte(unix.PACKET_MULTICAST), true
		}
		return Byte(unix.PACKET_HOST), true
	case expr.MetaKeySKUID, expr.MetaKeySKGID:
		if p.Path != FromBox {
			return Value{}, false // no socket
		}
		return Top(4), true
	case expr.MetaKeyIIFTYPE, expr.MetaKeyOIFTYPE:
		return Top(2), true
	case expr.MetaKeyIIFGROUP, expr.MetaKeyOIFGROUP:
		return Top(4), true
	}
	return Top(16), true
}

func ifname(s string) []byte {
	b := make([]byte, 16)
	copy(b, s)
	return b
}

func index(i uint32) Value {
	if i == 0 {
		return Between(hostU32(1), hostU32(0xffffffff)).Minus(hostU32(0), hostU32(0))
	}
	return Point(hostU32(i))
}

// payloadValue is what a payload load reads of p.
func payloadValue(p *Packet, hook string, prio int, base expr.PayloadBase, off, n int) Value {
	h := p.header(hook, prio)
	hop, flags := p.HopLimit, p.TCPFlags
	if hop.Len() != 1 {
		hop = Top(1)
	}
	if flags.Len() != 1 {
		flags = Top(1)
	}
	var fs fields
	switch base {
	case expr.PayloadBaseNetworkHeader:
		if p.IPv6 {
			fs = fields{{6, Byte(p.L4)}, {7, hop}}
			fs = append(fs, field{8, h.Src}, field{24, h.Dst})
		} else {
			fs = fields{{0, Byte(0x45)}, {8, hop}, {9, Byte(p.L4)}, {12, h.Src}, {16, h.Dst}}
		}
	case expr.PayloadBaseTransportHeader:
		switch p.L4 {
		case ProtoTCP:
			fs = fields{{0, h.Sport}, {2, h.Dport}, {13, flags}}
		case ProtoUDP:
			fs = fields{{0, h.Sport}, {2, h.Dport}}
		case ProtoICMP, ProtoICMPv6:
			fs = fields{{0, Byte(p.ICMPType)}, {1, Byte(p.ICMPCode)}}
		}
	}
	fs = validFields(fs)
	return join(fs.read(off, n))
}

// validFields drops fields left unset (a packet without TCP flags).
func validFields(fs fields) fields {
	out := fs[:0:0]
	for _, f := range fs {
		if f.v.Len() > 0 {
			out = append(out, f)
		}
	}
	return out
}

// ctValue is what a ct expression loads for p.
func ctValue(p *Packet, hook string, prio int, x *expr.Ct) Value {
	h := p.header(hook, prio)
	switch x.Key {
	case expr.CtKeySTATE:
		return Point(hostU32(p.State))
	case expr.CtKeySTATUS:
		if p.State != CtNew {
			// An established connection may be assured or not yet.
			return Points(hostU32(h.Status), hostU32(h.Status|StatusAssured))
		}
		return Point(hostU32(h.Status))
	case expr.CtKeyDIRECTION:
		if p.Reply {
			return Byte(1)
		}
		return Byte(0)
	case expr.CtKeyMARK:
		return Point(hostU32(0))
	case expr.CtKeyL3PROTOCOL:
		return Byte(byte(p.Family()))
	case expr.CtKeyPROTOCOL:
		return Byte(p.L4)
	}
	return Top(16)
}

// fibValue is what a fib lookup finds for p at hook; false when the
// kernel would end the rule.
func fibValue(p *Packet, hook string, prio int, x *expr.Fib) (Value, bool) {
	switch {
	case x.ResultADDRTYPE:
		t := uint32(unix.RTN_UNICAST)
		switch {
		case x.FlagDADDR && p.Multicast:
			t = unix.RTN_MULTICAST
		case (x.FlagDADDR && (p.Path == ToBox || p.preLocal(hook, prio))) || (x.FlagSADDR && p.Path == FromBox):
			t = unix.RTN_LOCAL
		}
		return Point(hostU32(t)), true
	case x.ResultOIF || x.ResultOIFNAME:
		var name string
		var idx uint32
		switch {
		case x.FlagSADDR:
			// The reverse path of braid's flows is the way they came.
			name, idx = p.IIF, p.iifIndex
		case x.FlagDADDR && p.Path == Forwarded:
			name, idx = p.OIF, p.oifIndex
		default:
			if x.ResultOIFNAME {
				return Top(16), true
			}
			return Top(4), true
		}
		if name == "" {
			return Top(4), true
		}
		if x.FlagPRESENT {
			return Point([]byte{1}), true
		}
		if x.ResultOIFNAME {
			return Point(ifname(name)), true
		}
		return index(idx), true
	}
	return Top(4), true
}

// be16 is a port in network order.
func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

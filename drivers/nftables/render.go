package nftables

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// ICMPType is an ICMP (IPv4) message type.
type ICMPType uint8

// ICMP message types braid's firewall names.
const (
	ICMPEchoReply        ICMPType = 0
	ICMPDestUnreachable  ICMPType = 3
	ICMPEchoRequest      ICMPType = 8
	ICMPTimeExceeded     ICMPType = 11
	ICMPParameterProblem ICMPType = 12
)

var icmpNames = map[uint8]string{
	0: "echo-reply", 3: "destination-unreachable", 4: "source-quench", 5: "redirect",
	8: "echo-request", 9: "router-advertisement", 10: "router-solicitation",
	11: "time-exceeded", 12: "parameter-problem", 13: "timestamp-request",
	14: "timestamp-reply", 15: "info-request", 16: "info-reply",
	17: "address-mask-request", 18: "address-mask-reply",
}

// String is nft's name for the type.
func (t ICMPType) String() string { return typeName(icmpNames, uint8(t)) }

// ICMPv6Type is an ICMPv6 message type.
type ICMPv6Type uint8

// ICMPv6 message types braid's firewall names (RFC 4890's).
const (
	ICMPv6DestUnreachable  ICMPv6Type = 1
	ICMPv6PacketTooBig     ICMPv6Type = 2
	ICMPv6TimeExceeded     ICMPv6Type = 3
	ICMPv6ParameterProblem ICMPv6Type = 4
	ICMPv6EchoRequest      ICMPv6Type = 128
	ICMPv6EchoReply        ICMPv6Type = 129
	ICMPv6MLDQuery         ICMPv6Type = 130
	ICMPv6MLDReport        ICMPv6Type = 131
	ICMPv6MLDDone          ICMPv6Type = 132
	ICMPv6RouterSolicit    ICMPv6Type = 133
	ICMPv6RouterAdvert     ICMPv6Type = 134
	ICMPv6NeighborSolicit  ICMPv6Type = 135
	ICMPv6NeighborAdvert   ICMPv6Type = 136
	ICMPv6MLD2Report       ICMPv6Type = 143
)

var icmpv6Names = map[uint8]string{
	1: "destination-unreachable", 2: "packet-too-big", 3: "time-exceeded",
	4: "parameter-problem", 128: "echo-request", 129: "echo-reply",
	130: "mld-listener-query", 131: "mld-listener-report", 132: "mld-listener-done",
	133: "nd-router-solicit", 134: "nd-router-advert", 135: "nd-neighbor-solicit",
	136: "nd-neighbor-advert", 137: "nd-redirect", 138: "router-renumbering",
	141: "ind-neighbor-solicit", 142: "ind-neighbor-advert", 143: "mld2-listener-report",
}

// String is nft's name for the type.
func (t ICMPv6Type) String() string { return typeName(icmpv6Names, uint8(t)) }

func typeName(names map[uint8]string, t uint8) string {
	if n, ok := names[t]; ok {
		return n
	}
	return strconv.Itoa(int(t))
}

var l4Names = map[uint8]string{1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp", 136: "udplite"}

var ctStateNames = []struct {
	bit  uint32
	name string
}{{1, "invalid"}, {2, "established"}, {4, "related"}, {8, "new"}, {64, "untracked"}}

var ctStatusNames = []struct {
	bit  uint32
	name string
}{{1, "expected"}, {2, "seen-reply"}, {4, "assured"}, {8, "confirmed"}, {16, "snat"}, {32, "dnat"}, {512, "dying"}}

// render writes a rule's expressions as nft-like text: what `nft list`
// shows, without the comment and with counters' values left out. It is
// how rules are compared (a desired rule and the kernel's copy of it
// render the same), so it is faithful: every expression and field that
// changes what the rule does shows up, and what it does not recognise it
// writes out in full. Like nft, it leaves out a protocol match that a
// later match implies (meta nfproto ipv4 before ip saddr, meta l4proto tcp
// before tcp dport); a header match with no such dependency before it is
// written raw (@nh,96,32), as nft does.
func render(exprs []expr.Any) string {
	r := renderer{regs: map[uint32]load{}, nfTok: -1, l4Tok: -1, read: map[int]bool{}}
	for _, e := range exprs {
		r.expr(e)
	}
	for i := range r.toks {
		if r.toks[i].load && !r.read[i] {
			r.toks[i].elided = false
		}
	}
	var b strings.Builder
	for _, t := range r.toks {
		if t.elided {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(t.s)
	}
	return printable(b.String())
}

// printable escapes control characters and invalid UTF-8 (names and data
// from the kernel may hold anything), so that a rule is one plain line in
// a plan or on a terminal.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			for _, c := range []byte(s[i : i+n]) {
				fmt.Fprintf(&b, "\\x%02x", c)
			}
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// load is what an expression left in a register.
type load struct {
	kind loadKind
	meta expr.MetaKey
	base expr.PayloadBase
	off  uint32
	n    uint32
	ct   expr.CtKey
	data []byte // immediate
	mask []byte // a bitwise AND applied to it
	fib  string // what a fib lookup reports ("fib daddr type")
	// fibKind is how to write the value a fib result is compared with.
	fibKind valueKind
	// toks are the tokens of the expressions that made what the register
	// holds (a load, and a bitwise on it): raw, elided unless the value is
	// never written out by a match or statement that uses it (then they
	// show, so that a rule with a load nobody uses never passes for one
	// without it).
	toks []int
}

type loadKind int

const (
	loadNone loadKind = iota
	loadMeta
	loadPayload
	loadCt
	loadImm
	loadFib
)

type token struct {
	s      string
	elided bool
	// load marks the raw token of a register load (see load.tok).
	load bool
}

type renderer struct {
	toks []token
	regs map[uint32]load
	// The protocol context set by meta nfproto and meta l4proto matches,
	// and the tokens that set it (elided when a later match uses it).
	nfproto byte
	nfSet   bool
	nfTok   int
	l4proto byte
	l4Set   bool
	l4Tok   int
	// read holds the load tokens whose register something read.
	read map[int]bool
}

// setReg records a load into register reg by expression e.
func (r *renderer) setReg(reg uint32, l load, e expr.Any) {
	name := strings.TrimPrefix(fmt.Sprintf("%T", e), "*expr.")
	fields := strings.TrimPrefix(fmt.Sprintf("%+v", e), "&")
	i := r.emit("[" + name + fields + "]")
	r.toks[i].elided, r.toks[i].load = true, true
	l.toks = append(slices.Clone(l.toks), i)
	r.regs[reg] = l
}

// reg returns what register reg holds.
func (r *renderer) reg(reg uint32) (load, bool) {
	l, ok := r.regs[reg]
	return l, ok
}

// used records that what loads hold was written out.
func (r *renderer) used(loads ...load) {
	for _, l := range loads {
		for _, i := range l.toks {
			r.read[i] = true
		}
	}
}

func (r *renderer) emit(s string) int {
	r.toks = append(r.toks, token{s: s})
	return len(r.toks) - 1
}

// raw writes an expression braid does not recognise, with all its fields.
func (r *renderer) raw(e expr.Any) {
	name := strings.TrimPrefix(fmt.Sprintf("%T", e), "*expr.")
	fields := strings.TrimPrefix(fmt.Sprintf("%+v", e), "&")
	r.emit("[" + name + fields + "]")
}

func (r *renderer) expr(e expr.Any) {
	switch e := e.(type) {
	case *expr.Meta:
		if e.SourceRegister {
			l, ok := r.reg(e.Register)
			if ok && e.Key == expr.MetaKeyMARK && l.kind == loadCt && l.ct == expr.CtKeyMARK && l.mask == nil {
				r.used(l)
				r.emit("meta mark set ct mark")
				return
			}
			if !ok || l.kind != loadImm || e.Key != expr.MetaKeyMARK {
				r.raw(e)
				return
			}
			if v, ok := hostUint32(l.data); ok {
				r.used(l)
				r.emit(fmt.Sprintf("meta mark set 0x%08x", v))
				return
			}
			r.raw(e)
			return
		}
		r.setReg(e.Register, load{kind: loadMeta, meta: e.Key}, e)
	case *expr.Payload:
		if e.OperationType != expr.PayloadLoad || e.CsumType != expr.CsumTypeNone || e.CsumFlags != 0 {
			r.raw(e)
			return
		}
		r.setReg(e.DestRegister, load{kind: loadPayload, base: e.Base, off: e.Offset, n: e.Len}, e)
	case *expr.Ct:
		if e.SourceRegister {
			l, ok := r.reg(e.Register)
			if v, vok := hostUint32(l.data); ok && vok && l.kind == loadImm && e.Key == expr.CtKeyMARK && e.Direction == 0 {
				r.used(l)
				r.emit(fmt.Sprintf("ct mark set 0x%08x", v))
				return
			}
			r.raw(e)
			return
		}
		if e.Direction != 0 {
			r.raw(e)
			return
		}
		r.setReg(e.Register, load{kind: loadCt, ct: e.Key}, e)
	case *expr.Immediate:
		r.setReg(e.Register, load{kind: loadImm, data: e.Data}, e)
	case *expr.Bitwise:
		l, ok := r.reg(e.SourceRegister)
		if !ok || l.mask != nil || !allZero(e.Xor) || len(e.Mask) != int(e.Len) {
			r.raw(e)
			delete(r.regs, e.DestRegister)
			return
		}
		l.mask = e.Mask
		r.setReg(e.DestRegister, l, e)
	case *expr.Cmp:
		r.cmp(e)
	case *expr.Lookup:
		l, ok := r.reg(e.SourceRegister)
		if !ok || e.IsDestRegSet || e.SetName == "" {
			r.raw(e)
			return
		}
		left, _, ok := r.left(l)
		if !ok {
			r.raw(e)
			return
		}
		op := " "
		if e.Invert {
			op = " != "
		}
		r.used(l)
		r.emit(left + op + "@" + e.SetName)
	case *expr.Verdict:
		r.verdict(e)
	case *expr.Counter:
		r.emit("counter")
	case *expr.Masq:
		if e.ToPorts || e.RegProtoMin != 0 || e.RegProtoMax != 0 {
			r.raw(e)
			return
		}
		r.emit("masquerade" + natFlags(e.Random, e.FullyRandom, e.Persistent))
	case *expr.NAT:
		r.nat(e)
	case *expr.TProxy:
		r.tproxy(e)
	case *expr.Reject:
		r.reject(e)
	case *expr.Exthdr:
		r.exthdr(e)
	case *expr.Fib:
		name, kind, ok := fibLeft(e)
		if !ok {
			r.raw(e)
			delete(r.regs, e.Register)
			return
		}
		r.setReg(e.Register, load{kind: loadFib, fib: name, fibKind: kind}, e)
	case *undecoded:
		// What it leaves in which register is unknown.
		clear(r.regs)
		r.emit("[" + e.name + " " + hex.EncodeToString(e.data) + "]")
	default:
		// It may load registers (socket, rt): what they hold is unknown.
		clear(r.regs)
		r.raw(e)
	}
}

// exthdr writes a TCP option write braid makes (tcp option maxseg size
// set N); any other extension header expression is written out in full.
func (r *renderer) exthdr(e *expr.Exthdr) {
	l, ok := r.reg(e.SourceRegister)
	if e.SourceRegister == 0 || e.Op != expr.ExthdrOpTcpopt || e.Type != tcpOptMaxseg || e.Offset != 2 || e.Len != 2 ||
		!ok || l.kind != loadImm || len(l.data) != 2 {
		r.raw(e)
		return
	}
	r.used(l)
	r.emit("tcp option maxseg size set " + strconv.Itoa(int(binary.BigEndian.Uint16(l.data))))
}

// fibFlags are the fib lookup's keys, in the order nft writes them.
var fibFlags = []struct {
	on   func(*expr.Fib) bool
	name string
}{
	{func(f *expr.Fib) bool { return f.FlagSADDR }, "saddr"},
	{func(f *expr.Fib) bool { return f.FlagDADDR }, "daddr"},
	{func(f *expr.Fib) bool { return f.FlagMARK }, "mark"},
	{func(f *expr.Fib) bool { return f.FlagIIF }, "iif"},
	{func(f *expr.Fib) bool { return f.FlagOIF }, "oif"},
}

// fibLeft writes a fib lookup as nft does ("fib daddr type"), and how its
// result is compared; false for a form braid does not write (the present
// flag, no key, no result).
func fibLeft(f *expr.Fib) (string, valueKind, bool) {
	var keys []string
	for _, fl := range fibFlags {
		if fl.on(f) {
			keys = append(keys, fl.name)
		}
	}
	if len(keys) == 0 || f.FlagPRESENT {
		return "", valHex, false
	}
	left := "fib " + strings.Join(keys, " . ")
	switch {
	case f.ResultADDRTYPE:
		return left + " type", valAddrType, true
	case f.ResultOIFNAME:
		return left + " oifname", valString, true
	case f.ResultOIF:
		return left + " oif", valU32, true
	}
	return "", valHex, false
}

// addrTypes are nft's names of route types, as fib ... type compares them.
var addrTypes = []string{"unspec", "unicast", "local", "broadcast", "anycast", "multicast", "blackhole", "unreachable", "prohibit"}

// tproxy writes a tproxy statement as nft does: "tproxy ip to :7190",
// "tproxy ip6 to [2001:db8::1]:7190", "tproxy to :7190" (either family).
func (r *renderer) tproxy(e *expr.TProxy) {
	fam := map[byte]string{nfprotoIPv4: " ip", nfprotoIPv6: " ip6", unix.NFPROTO_UNSPEC: ""}
	f, ok := fam[e.Family]
	if !ok || (e.RegAddr == 0 && e.RegPort == 0) {
		r.raw(e)
		return
	}
	to := ""
	var ls []load
	if e.RegAddr != 0 {
		l, ok := r.reg(e.RegAddr)
		ls = append(ls, l)
		a, aok := netip.AddrFromSlice(l.data)
		if !ok || l.kind != loadImm || !aok || (e.Family == nfprotoIPv4 && !a.Is4()) || (e.Family == nfprotoIPv6 && !a.Is6()) || e.Family == unix.NFPROTO_UNSPEC {
			r.raw(e)
			return
		}
		to = " " + a.String()
		if a.Is6() {
			to = " [" + a.String() + "]"
		}
	}
	if e.RegPort != 0 {
		l, ok := r.reg(e.RegPort)
		ls = append(ls, l)
		if !ok || l.kind != loadImm || len(l.data) != 2 {
			r.raw(e)
			return
		}
		if to == "" {
			to = " "
		}
		to += ":" + strconv.Itoa(int(binary.BigEndian.Uint16(l.data)))
	}
	r.used(ls...)
	r.emit("tproxy" + f + " to" + to)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func natFlags(random, fully, persistent bool) string {
	var s string
	if random {
		s += " random"
	}
	if fully {
		s += " fully-random"
	}
	if persistent {
		s += " persistent"
	}
	return s
}

func (r *renderer) verdict(v *expr.Verdict) {
	if v.Chain != "" && v.Kind != expr.VerdictJump && v.Kind != expr.VerdictGoto {
		r.raw(v) // a chain where none belongs: written out, not dropped
		return
	}
	switch v.Kind {
	case expr.VerdictAccept:
		r.emit("accept")
	case expr.VerdictDrop:
		r.emit("drop")
	case expr.VerdictReturn:
		r.emit("return")
	case expr.VerdictContinue:
		r.emit("continue")
	case expr.VerdictJump:
		r.emit("jump " + v.Chain)
	case expr.VerdictGoto:
		r.emit("goto " + v.Chain)
	default:
		r.raw(v)
	}
}

func (r *renderer) nat(e *expr.NAT) {
	kind := map[expr.NATType]string{expr.NATTypeDestNAT: "dnat", expr.NATTypeSourceNAT: "snat"}[e.Type]
	fam := map[uint32]string{nfprotoIPv4: "ip", nfprotoIPv6: "ip6"}[e.Family]
	amin, ok1 := r.reg(e.RegAddrMin)
	var amax load
	ok2 := false
	if e.RegAddrMax != 0 {
		amax, ok2 = r.reg(e.RegAddrMax)
	}
	if kind == "" || fam == "" || e.RegAddrMin == 0 || !ok1 || amin.kind != loadImm || e.Prefix ||
		(e.RegAddrMax != 0 && (!ok2 || amax.kind != loadImm)) {
		r.raw(e)
		return
	}
	addr := func(b []byte) (string, bool) {
		a, ok := netip.AddrFromSlice(b)
		if !ok || a.Is6() != (fam == "ip6") {
			return "", false
		}
		if a.Is6() {
			return "[" + a.String() + "]", true
		}
		return a.String(), true
	}
	ls := []load{amin, amax}
	to, ok := addr(amin.data)
	if !ok {
		r.raw(e)
		return
	}
	if e.RegAddrMax != 0 && e.RegAddrMax != e.RegAddrMin && string(amax.data) != string(amin.data) {
		hi, ok := addr(amax.data)
		if !ok {
			r.raw(e)
			return
		}
		to += "-" + hi
	}
	if e.RegProtoMin != 0 {
		pmin, ok := r.reg(e.RegProtoMin)
		ls = append(ls, pmin)
		if !ok || pmin.kind != loadImm || len(pmin.data) != 2 {
			r.raw(e)
			return
		}
		to += ":" + strconv.Itoa(int(binary.BigEndian.Uint16(pmin.data)))
		if e.RegProtoMax != 0 && e.RegProtoMax != e.RegProtoMin {
			pmax, ok := r.reg(e.RegProtoMax)
			ls = append(ls, pmax)
			if !ok || pmax.kind != loadImm || len(pmax.data) != 2 {
				r.raw(e)
				return
			}
			if string(pmax.data) != string(pmin.data) {
				to += "-" + strconv.Itoa(int(binary.BigEndian.Uint16(pmax.data)))
			}
		}
	}
	r.used(ls...)
	r.emit(kind + " " + fam + " to " + to + natFlags(e.Random, e.FullyRandom, e.Persistent))
}

// opText is how nft writes a comparison (equality is implicit).
func opText(op expr.CmpOp) string {
	switch op {
	case expr.CmpOpEq:
		return " "
	case expr.CmpOpNeq:
		return " != "
	case expr.CmpOpLt:
		return " < "
	case expr.CmpOpLte:
		return " <= "
	case expr.CmpOpGt:
		return " > "
	case expr.CmpOpGte:
		return " >= "
	}
	return fmt.Sprintf(" op%d ", op)
}

// value kinds of a left-hand side.
type valueKind int

const (
	valHex valueKind = iota
	valString
	valNFProto
	valL4Proto
	valU32
	valAddr
	valPort
	valICMP
	valICMPv6
	valCtState
	valCtStatus
	valCtDirection
	valAddrType
	valTCPFlags
)

// left describes what a register holds, as the left side of a match, and
// how to write the value it is compared with. It marks the protocol match
// it relies on as implied.
func (r *renderer) left(l load) (string, valueKind, bool) {
	switch l.kind {
	case loadMeta:
		switch l.meta {
		case expr.MetaKeyNFPROTO:
			return "meta nfproto", valNFProto, true
		case expr.MetaKeyL4PROTO:
			return "meta l4proto", valL4Proto, true
		case expr.MetaKeyIIFNAME:
			return "iifname", valString, true
		case expr.MetaKeyOIFNAME:
			return "oifname", valString, true
		case expr.MetaKeyMARK:
			return "meta mark", valU32, true
		case expr.MetaKeyIIF:
			return "iif", valU32, true
		case expr.MetaKeyOIF:
			return "oif", valU32, true
		}
		return "meta key" + strconv.Itoa(int(l.meta)), valHex, true
	case loadCt:
		switch l.ct {
		case expr.CtKeySTATE:
			return "ct state", valCtState, true
		case expr.CtKeySTATUS:
			return "ct status", valCtStatus, true
		case expr.CtKeyMARK:
			return "ct mark", valU32, true
		case expr.CtKeyDIRECTION:
			return "ct direction", valCtDirection, true
		}
		return "ct key" + strconv.Itoa(int(l.ct)), valHex, true
	case loadPayload:
		switch l.base {
		case expr.PayloadBaseNetworkHeader:
			if name, ok := r.netField(l); ok {
				return name, valAddr, true
			}
			return fmt.Sprintf("@nh,%d,%d", l.off*8, l.n*8), valHex, true
		case expr.PayloadBaseTransportHeader:
			if name, kind, ok := r.transportField(l); ok {
				return name, kind, true
			}
			return fmt.Sprintf("@th,%d,%d", l.off*8, l.n*8), valHex, true
		case expr.PayloadBaseLLHeader:
			return fmt.Sprintf("@ll,%d,%d", l.off*8, l.n*8), valHex, true
		}
	case loadFib:
		return l.fib, l.fibKind, true
	case loadImm:
		return "", valHex, false
	}
	return "", valHex, false
}

// netField names an address field of the IPv4 or IPv6 header, loaded in
// full or in part (nft loads only the bytes a prefix needs), when a meta
// nfproto match says which header it is.
func (r *renderer) netField(l load) (string, bool) {
	if !r.nfSet {
		return "", false
	}
	var name string
	var start, size uint32
	switch {
	case r.nfproto == nfprotoIPv4 && l.off == ip4Src:
		name, start, size = "ip saddr", ip4Src, 4
	case r.nfproto == nfprotoIPv4 && l.off == ip4Dst:
		name, start, size = "ip daddr", ip4Dst, 4
	case r.nfproto == nfprotoIPv6 && l.off == ip6Src:
		name, start, size = "ip6 saddr", ip6Src, 16
	case r.nfproto == nfprotoIPv6 && l.off == ip6Dst:
		name, start, size = "ip6 daddr", ip6Dst, 16
	default:
		return "", false
	}
	if l.off != start || l.n == 0 || l.n > size {
		return "", false
	}
	r.elide(r.nfTok)
	return name, true
}

// transportField names a field of the TCP, UDP, ICMP or ICMPv6 header when
// a meta l4proto match says which header it is.
func (r *renderer) transportField(l load) (string, valueKind, bool) {
	if !r.l4Set {
		return "", valHex, false
	}
	var name string
	var kind valueKind
	switch p := r.l4proto; {
	case (p == protoTCP || p == protoUDP) && l.off == 0 && l.n == 2:
		name, kind = l4Names[p]+" sport", valPort
	case (p == protoTCP || p == protoUDP) && l.off == 2 && l.n == 2:
		name, kind = l4Names[p]+" dport", valPort
	case p == protoTCP && l.off == tcpFlagsOffset && l.n == 1:
		name, kind = "tcp flags", valTCPFlags
	case p == protoICMP && l.off == 0 && l.n == 1:
		name, kind = "icmp type", valICMP
	case p == protoICMPv6 && l.off == 0 && l.n == 1:
		name, kind = "icmpv6 type", valICMPv6
	default:
		return "", valHex, false
	}
	r.elide(r.l4Tok)
	return name, kind, true
}

func (r *renderer) elide(i int) {
	if i >= 0 && i < len(r.toks) {
		r.toks[i].elided = true
	}
}

func (r *renderer) cmp(c *expr.Cmp) {
	l, ok := r.reg(c.Register)
	if !ok {
		r.raw(c)
		return
	}
	left, kind, ok := r.left(l)
	if !ok {
		r.raw(c)
		return
	}
	// ct state/status bits: (x & mask) != 0 is "any of these".
	if (kind == valCtState || kind == valCtStatus) && l.mask != nil && c.Op == expr.CmpOpNeq && allZero(c.Data) {
		if names, ok := bitNames(kind, l.mask); ok {
			r.used(l)
			r.emit(left + " " + names)
			return
		}
	}
	// TCP flags: (flags & mask) != 0 is "any of these".
	if kind == valTCPFlags && len(l.mask) == 1 && c.Op == expr.CmpOpNeq && allZero(c.Data) {
		if names, ok := tcpFlagNames(l.mask[0]); ok {
			r.used(l)
			r.emit(left + " " + names)
			return
		}
	}
	if l.mask != nil && kind != valAddr {
		left = "(" + left + " & 0x" + hex.EncodeToString(l.mask) + ")"
		kind = valHex
	}
	val, ok := value(kind, c.Data, l)
	if !ok {
		val, kind = "0x"+hex.EncodeToString(c.Data), valHex
	}
	r.used(l)
	i := r.emit(left + opText(c.Op) + val)
	if c.Op != expr.CmpOpEq || len(c.Data) != 1 {
		return
	}
	switch {
	case kind == valNFProto && l.mask == nil:
		r.nfproto, r.nfSet, r.nfTok = c.Data[0], true, i
	case kind == valL4Proto && l.mask == nil:
		r.l4proto, r.l4Set, r.l4Tok = c.Data[0], true, i
	}
}

// tcpFlagNames writes TCP flags as nft's comma-separated names, false
// for none.
func tcpFlagNames(mask byte) (string, bool) {
	if mask == 0 {
		return "", false
	}
	var out []string
	for i, n := range []string{"fin", "syn", "rst", "psh", "ack", "urg", "ecn", "cwr"} {
		if mask&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, ","), true
}

// bitNames writes a ct state or status mask as nft's comma-separated names.
func bitNames(kind valueKind, mask []byte) (string, bool) {
	v, ok := hostUint32(mask)
	if !ok || v == 0 {
		return "", false
	}
	names := ctStateNames
	if kind == valCtStatus {
		names = ctStatusNames
	}
	var out []string
	for _, n := range names {
		if v&n.bit != 0 {
			out = append(out, n.name)
			v &^= n.bit
		}
	}
	if v != 0 {
		out = append(out, "0x"+strconv.FormatUint(uint64(v), 16))
	}
	return strings.Join(out, ","), true
}

// value writes the value a match compares with.
func value(kind valueKind, b []byte, l load) (string, bool) {
	switch kind {
	case valString:
		s := strings.TrimRight(string(b), "\x00")
		if strings.ContainsRune(s, 0) {
			return "", false
		}
		if len(s) == len(b) && len(b) < 16 {
			// No NUL within IFNAMSIZ: a prefix match (nft's "eth*").
			return strconv.Quote(s + "*"), true
		}
		return strconv.Quote(s), true
	case valNFProto:
		if len(b) != 1 {
			return "", false
		}
		switch b[0] {
		case nfprotoIPv4:
			return "ipv4", true
		case nfprotoIPv6:
			return "ipv6", true
		}
		return strconv.Itoa(int(b[0])), true
	case valL4Proto:
		if len(b) != 1 {
			return "", false
		}
		if n, ok := l4Names[b[0]]; ok {
			return n, true
		}
		return strconv.Itoa(int(b[0])), true
	case valU32:
		v, ok := hostUint32(b)
		return fmt.Sprintf("0x%08x", v), ok
	case valCtDirection:
		if len(b) != 1 || b[0] > ctDirReply {
			return "", false
		}
		return []string{"original", "reply"}[b[0]], true
	case valPort:
		if len(b) != 2 {
			return "", false
		}
		return strconv.Itoa(int(binary.BigEndian.Uint16(b))), true
	case valICMP:
		if len(b) != 1 {
			return "", false
		}
		return ICMPType(b[0]).String(), true
	case valICMPv6:
		if len(b) != 1 {
			return "", false
		}
		return ICMPv6Type(b[0]).String(), true
	case valAddr:
		return addrValue(b, l)
	case valAddrType:
		v, ok := hostUint32(b)
		if !ok {
			return "", false
		}
		if int(v) < len(addrTypes) {
			return addrTypes[v], true
		}
		return strconv.FormatUint(uint64(v), 10), true
	}
	return "", false
}

// addrValue writes an address match: the compared bytes, as a prefix of
// the bits the load and mask cover.
func addrValue(b []byte, l load) (string, bool) {
	size := 4
	if l.off == ip6Src || l.off == ip6Dst {
		size = 16
	}
	if len(b) != int(l.n) {
		return "", false
	}
	full := make([]byte, size)
	copy(full, b)
	nbits := int(l.n) * 8
	if l.mask != nil {
		ones := 0
		for i, m := range l.mask {
			ones += bits.OnesCount8(m)
			// The mask must be a prefix: leading ones only.
			if m != 0xff && i+1 < len(l.mask) && !allZero(l.mask[i+1:]) {
				return "", false
			}
			if bits.LeadingZeros8(^m) != bits.OnesCount8(m) {
				return "", false
			}
		}
		nbits = ones
	}
	a, _ := netip.AddrFromSlice(full)
	p := netip.PrefixFrom(a, nbits)
	if p.Masked() != p {
		return "", false
	}
	if nbits == size*8 {
		return a.String(), true
	}
	return p.String(), true
}

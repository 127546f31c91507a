package nftables

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/reconcile/plan"
)

// Stmt is one match or action of a rule. Rules are built from statements
// (IIFName("lan0"), Accept(), ...), which emit the same expressions nft
// would for the same text, so that `nft list` shows braid's rules as nft's
// own.
type Stmt struct {
	exprs []expr.Any
	err   error
}

// Registers, as nft allocates them.
const (
	reg1 = unix.NFT_REG_1
	reg2 = unix.NFT_REG_2
)

// Protocol numbers used in matches.
const (
	nfprotoIPv4 = unix.NFPROTO_IPV4
	nfprotoIPv6 = unix.NFPROTO_IPV6
	protoICMP   = unix.IPPROTO_ICMP
	protoTCP    = unix.IPPROTO_TCP
	protoUDP    = unix.IPPROTO_UDP
	protoICMPv6 = unix.IPPROTO_ICMPV6
)

// ifname pads an interface name as nft compares it: IFNAMSIZ bytes.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func metaCmp(key expr.MetaKey, data []byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: data},
	}
}

// ifaceMatch matches the interface name of key (iifname, oifname).
func ifaceMatch(key expr.MetaKey, name string) Stmt {
	if name == "" || len(name) >= unix.IFNAMSIZ {
		return Stmt{err: fmt.Errorf("invalid interface name %q", name)}
	}
	return Stmt{exprs: metaCmp(key, ifname(name))}
}

// IIFName matches packets that arrived on the named interface.
func IIFName(name string) Stmt { return ifaceMatch(expr.MetaKeyIIFNAME, name) }

// IIFNameNot matches packets that did not arrive on the named interface.
func IIFNameNot(name string) Stmt {
	s := IIFName(name)
	if s.err == nil {
		s.exprs[1].(*expr.Cmp).Op = expr.CmpOpNeq
	}
	return s
}

// OIFName matches packets that leave by the named interface.
func OIFName(name string) Stmt { return ifaceMatch(expr.MetaKeyOIFNAME, name) }

// Offsets of addresses in the IPv4 and IPv6 headers.
const (
	ip4Src, ip4Dst = 12, 16
	ip6Src, ip6Dst = 8, 24
)

// addrField is where nft finds the source or destination address of a
// family: the family's number (to match first with meta nfproto, without
// which the header offsets mean nothing in an inet table), the address's
// offset in the network header and its length.
func addrField(v6, dst bool) (proto byte, off, n uint32) {
	switch {
	case v6 && dst:
		return nfprotoIPv6, ip6Dst, 16
	case v6:
		return nfprotoIPv6, ip6Src, 16
	case dst:
		return nfprotoIPv4, ip4Dst, 4
	}
	return nfprotoIPv4, ip4Src, 4
}

// loadAddr loads the address at off, n bytes, into reg1.
func loadAddr(off, n uint32) expr.Any {
	return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}
}

// addrMatch matches the source or destination address against p, after
// its family.
func addrMatch(p netip.Prefix, dst bool) Stmt {
	if !p.IsValid() {
		return Stmt{err: errors.New("invalid prefix")}
	}
	p = p.Masked()
	proto, off, n := addrField(p.Addr().Is6(), dst)
	out := metaCmp(expr.MetaKeyNFPROTO, []byte{proto})
	if p.Bits() == 0 {
		return Stmt{exprs: out}
	}
	out = append(out, loadAddr(off, n))
	if p.Bits() < p.Addr().BitLen() {
		mask := netip.PrefixFrom(maxAddr(p.Addr().Is6()), p.Bits()).Masked().Addr().AsSlice()
		out = append(out, &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: n, Mask: mask, Xor: make([]byte, n)})
	}
	out = append(out, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: p.Addr().AsSlice()})
	return Stmt{exprs: out}
}

// SrcPrefix matches packets from p (ip saddr, or ip6 saddr).
func SrcPrefix(p netip.Prefix) Stmt { return addrMatch(p, false) }

// DstPrefix matches packets to p (ip daddr, or ip6 daddr).
func DstPrefix(p netip.Prefix) Stmt { return addrMatch(p, true) }

// inSet matches the source or destination address against a named set.
func inSet(set string, v6, dst bool) Stmt {
	proto, off, n := addrField(v6, dst)
	out := metaCmp(expr.MetaKeyNFPROTO, []byte{proto})
	out = append(out, loadAddr(off, n), &expr.Lookup{SourceRegister: reg1, SetName: set})
	return Stmt{exprs: out}
}

// SrcInSet matches packets whose source address is in the named set.
func SrcInSet(set string, v6 bool) Stmt { return inSet(set, v6, false) }

// DstInSet matches packets whose destination address is in the named set.
func DstInSet(set string, v6 bool) Stmt { return inSet(set, v6, true) }

// l4port checks a TCP or UDP port ("tcp", "udp") and returns the
// protocol's number.
func l4port(proto string, port int) (byte, error) {
	var p byte
	switch proto {
	case "tcp":
		p = protoTCP
	case "udp":
		p = protoUDP
	default:
		return 0, fmt.Errorf("unknown protocol %q", proto)
	}
	if port < 1 || port > 65535 {
		return 0, fmt.Errorf("invalid port %d", port)
	}
	return p, nil
}

// L4Proto matches TCP or UDP packets ("tcp", "udp"): meta l4proto.
func L4Proto(proto string) Stmt {
	p, err := l4port(proto, 1)
	if err != nil {
		return Stmt{err: err}
	}
	return Stmt{exprs: metaCmp(expr.MetaKeyL4PROTO, []byte{p})}
}

// DPort matches TCP or UDP packets ("tcp", "udp") to a port.
func DPort(proto string, port int) Stmt {
	p, err := l4port(proto, port)
	if err != nil {
		return Stmt{err: err}
	}
	out := metaCmp(expr.MetaKeyL4PROTO, []byte{p})
	out = append(out,
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.BigEndian.PutUint16(uint16(port))})
	return Stmt{exprs: out}
}

func icmpMatch(proto byte, typ uint8) Stmt {
	out := metaCmp(expr.MetaKeyL4PROTO, []byte{proto})
	out = append(out,
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{typ}})
	return Stmt{exprs: out}
}

// ICMP matches an ICMP (IPv4) message type.
func ICMP(t ICMPType) Stmt { return icmpMatch(protoICMP, uint8(t)) }

// ICMPv6 matches an ICMPv6 message type.
func ICMPv6(t ICMPv6Type) Stmt { return icmpMatch(protoICMPv6, uint8(t)) }

// Connection tracking states (ct state) for CtState.
const (
	CtInvalid     = expr.CtStateBitINVALID
	CtEstablished = expr.CtStateBitESTABLISHED
	CtRelated     = expr.CtStateBitRELATED
	CtNew         = expr.CtStateBitNEW
)

// ctStatusDNAT is IPS_DST_NAT, the ct status bit of a destination-NATed
// connection.
const ctStatusDNAT = 1 << 5

func ctBits(key expr.CtKey, bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg1, Key: key},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)},
	}
}

// CtState matches connections in any of the given states (CtEstablished |
// CtRelated).
func CtState(states uint32) Stmt {
	if states == 0 {
		return Stmt{err: errors.New("ct state: no state")}
	}
	return Stmt{exprs: ctBits(expr.CtKeySTATE, states)}
}

// CtStatusDNAT matches connections whose destination was translated (the
// port forwards).
func CtStatusDNAT() Stmt { return Stmt{exprs: ctBits(expr.CtKeySTATUS, ctStatusDNAT)} }

// CtDirectionReply matches packets that go in a connection's reply
// direction (ct direction reply): the answers of a connection someone
// else opened, such as a LAN host's replies to a port forward.
func CtDirectionReply() Stmt {
	return Stmt{exprs: []expr.Any{
		&expr.Ct{Register: reg1, Key: expr.CtKeyDIRECTION},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{ctDirReply}},
	}}
}

// ctDirReply is IP_CT_DIR_REPLY, as ct direction loads it (one byte).
const ctDirReply = 1

// Marked matches packets that carry a mark (meta mark != 0): braid's own
// marks (an uplink's table for per-domain egress) or another program's.
func Marked() Stmt {
	return Stmt{exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)},
	}}
}

// rtnLocal is the route type of an address of the box itself (RTN_LOCAL),
// as the fib expression reports it.
const rtnLocal = unix.RTN_LOCAL

// DstLocal matches packets to an address of the box itself, whatever the
// interface holds it (fib daddr type local).
func DstLocal() Stmt {
	return Stmt{exprs: []expr.Any{
		&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(rtnLocal)},
	}}
}

// DstNotLocal matches packets to an address that is not the box's own
// (fib daddr type != local).
func DstNotLocal() Stmt {
	return Stmt{exprs: []expr.Any{
		&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(rtnLocal)},
	}}
}

// rtnUnicast is the route type of an address routed elsewhere
// (RTN_UNICAST), as the fib expression reports it.
const rtnUnicast = unix.RTN_UNICAST

// DstNotUnicast matches packets whose destination is not a unicast
// address routed elsewhere (fib daddr type != unicast): broadcast,
// multicast, the box's own, or one with no route.
func DstNotUnicast() Stmt {
	return Stmt{exprs: []expr.Any{
		&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(rtnUnicast)},
	}}
}

// TProxy hands TCP or UDP packets ("tcp", "udp") of one family to the
// transparent socket listening on port, if there is one: the kernel
// assigns the packet to that socket, and the statements after it in the
// rule run (mark the packet, so that a policy rule delivers it locally).
// When no socket with IP_TRANSPARENT listens on the port (the process that
// owned it is gone), the rule stops there and the packet continues
// unchanged: steering by TProxy fails open. It writes what nft writes for
// "meta l4proto tcp tproxy ip to :PORT" (only the prerouting hook allows
// it).
func TProxy(proto string, v6 bool, port int) Stmt {
	p, err := l4port(proto, port)
	if err != nil {
		return Stmt{err: fmt.Errorf("tproxy: %w", err)}
	}
	family := byte(nfprotoIPv4)
	if v6 {
		family = nfprotoIPv6
	}
	out := metaCmp(expr.MetaKeyL4PROTO, []byte{p})
	out = append(out,
		&expr.Immediate{Register: reg1, Data: binaryutil.BigEndian.PutUint16(uint16(port))},
		&expr.TProxy{Family: family, TableFamily: unix.NFPROTO_INET, RegPort: reg1})
	return Stmt{exprs: out}
}

// Return ends the chain for the packet: it goes on with the next chain
// of its hook.
func Return() Stmt { return Stmt{exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}}} }

// Accept accepts the packet.
func Accept() Stmt { return Stmt{exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}} }

// Drop counts and drops the packet (the counter shows in `nft list`).
func Drop() Stmt {
	return Stmt{exprs: []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}}
}

// Masquerade rewrites the source to the outgoing interface's address.
func Masquerade() Stmt { return Stmt{exprs: []expr.Any{&expr.Masq{}}} }

// DNAT rewrites the destination of IPv4 packets to an address and port
// (dnat ip to): the port forwards to LAN hosts. In the inet table, it
// leaves IPv6 packets alone. (IPv6 is routed, never translated; the
// renderer still reads "dnat ip6 to", which an older braid's DNS
// intercept wrote, so that a plan shows its removal.)
func DNAT(to netip.AddrPort) Stmt {
	a := to.Addr()
	if !a.Is4() || to.Port() == 0 {
		return Stmt{err: fmt.Errorf("dnat to %s: want an IPv4 ADDRESS:PORT", to)}
	}
	return Stmt{exprs: dnatExprs(a, to.Port(), nfprotoIPv4)}
}

// dnatExprs is a destination NAT to addr and port, for packets of
// family (nfprotoIPv4, nfprotoIPv6).
func dnatExprs(addr netip.Addr, port uint16, family uint32) []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: reg1, Data: addr.AsSlice()},
		&expr.Immediate{Register: reg2, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: family, RegAddrMin: reg1, RegAddrMax: reg1, RegProtoMin: reg2, RegProtoMax: reg2, Specified: true},
	}
}

// SetMark sets the packet's mark (which policy rules can match).
func SetMark(mark uint32) Stmt {
	return Stmt{exprs: []expr.Any{
		&expr.Immediate{Register: reg1, Data: binaryutil.NativeEndian.PutUint32(mark)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1},
	}}
}

// CtMark matches packets of connections whose mark is mark (ct mark
// MARK): a mark saved by SetCtMark at the connection's first packet.
func CtMark(mark uint32) Stmt {
	return Stmt{exprs: []expr.Any{
		&expr.Ct{Register: reg1, Key: expr.CtKeyMARK},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(mark)},
	}}
}

// SetCtMark sets the mark of the packet's connection (ct mark set MARK),
// which the connection keeps for its life: CtMark and RestoreMark read
// it on its later packets.
func SetCtMark(mark uint32) Stmt {
	return Stmt{exprs: []expr.Any{
		&expr.Immediate{Register: reg1, Data: binaryutil.NativeEndian.PutUint32(mark)},
		&expr.Ct{Key: expr.CtKeyMARK, SourceRegister: true, Register: reg1},
	}}
}

// RestoreMark sets the packet's mark to its connection's (meta mark set
// ct mark).
func RestoreMark() Stmt {
	return Stmt{exprs: []expr.Any{
		&expr.Ct{Register: reg1, Key: expr.CtKeyMARK},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1},
	}}
}

// tcpFlagSYN is the SYN bit of the TCP header's flags octet (offset 13).
const (
	tcpFlagsOffset = 13
	tcpFlagSYN     = 0x02
)

// TCPSyn matches TCP segments with the SYN flag set (tcp flags syn): a
// connection's first two segments, which carry the MSS option.
func TCPSyn() Stmt {
	out := metaCmp(expr.MetaKeyL4PROTO, []byte{protoTCP})
	out = append(out,
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: tcpFlagsOffset, Len: 1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 1, Mask: []byte{tcpFlagSYN}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: []byte{0}})
	return Stmt{exprs: out}
}

// tcpOptMaxseg is the TCP option kind of the MSS (RFC 9293 3.2); its
// value is 2 octets at offset 2 of the option.
const tcpOptMaxseg = 2

// SetMSS writes mss into a TCP segment's MSS option (tcp option maxseg
// size set MSS). The kernel only ever lowers it: a segment whose MSS is
// already smaller keeps it.
func SetMSS(mss int) Stmt {
	if mss < 1 || mss > 65535 {
		return Stmt{err: fmt.Errorf("invalid MSS %d", mss)}
	}
	return Stmt{exprs: []expr.Any{
		&expr.Immediate{Register: reg1, Data: binaryutil.BigEndian.PutUint16(uint16(mss))},
		&expr.Exthdr{SourceRegister: reg1, Op: expr.ExthdrOpTcpopt, Type: tcpOptMaxseg, Offset: 2, Len: 2},
	}}
}

// Ruleset collects braid's table as the compiler builds it: named sets and
// rules chain by chain, in order. Resources returns it as plan resources.
// Errors (an unknown chain, a bad ID, an invalid statement, one ID wanted
// with two different rules) are collected and returned by Resources.
type Ruleset struct {
	sets  []Set
	rules map[string][]Rule
	// at finds a rule in rules by chain and ID: checking each new rule
	// against every rule of its chain was quadratic (1,000 open ports
	// were half a million string comparisons).
	at   map[ruleAt]int
	errs []error
}

// ruleAt is a rule's place in a Ruleset: its chain and ID.
type ruleAt struct{ chain, id string }

// NewRuleset returns an empty ruleset.
func NewRuleset() *Ruleset { return &Ruleset{rules: map[string][]Rule{}, at: map[ruleAt]int{}} }

// AddSet declares a named set of IPv4 (v6 false) or IPv6 addresses, with
// intervals, holding prefixes (merged where they overlap or touch).
func (rs *Ruleset) AddSet(name string, v6 bool, prefixes []netip.Prefix) {
	if !rs.newSet(name) {
		return
	}
	typ := typeIPv4
	if v6 {
		typ = typeIPv6
	}
	for _, p := range prefixes {
		if !p.IsValid() || p.Addr().Is6() != v6 || p.Addr().Is4In6() {
			rs.errs = append(rs.errs, fmt.Errorf("nftables set %s (%s): element %s is not of its family", name, typ, p))
			return
		}
	}
	rs.sets = append(rs.sets, Set{Name: name, Type: typ, Interval: true, Elements: rangesOf(prefixes)})
}

// AddTimeoutSet declares a named set of IPv4 (v6 false) or IPv6
// addresses whose elements carry their own timeout and belong to a
// session, not the spec: the driver creates the set, changes its
// definition and deletes it, but never reads, removes or reports its
// elements. A session writes them with Elements.
func (rs *Ruleset) AddTimeoutSet(name string, v6 bool) {
	if !rs.newSet(name) {
		return
	}
	typ := typeIPv4
	if v6 {
		typ = typeIPv6
	}
	rs.sets = append(rs.sets, Set{Name: name, Type: typ, Timeout: true})
}

// newSet checks the name of a set to declare, and that it is not
// declared yet.
func (rs *Ruleset) newSet(name string) bool {
	if !validID(name) {
		rs.errs = append(rs.errs, fmt.Errorf("nftables set name %q: want 1 to %d characters without spaces or quotes", name, maxIDLen))
		return false
	}
	if slices.ContainsFunc(rs.sets, func(s Set) bool { return s.Name == name }) {
		rs.errs = append(rs.errs, fmt.Errorf("nftables set %s declared twice", name))
		return false
	}
	return true
}

// Add appends a rule to a chain. id identifies the rule within its chain
// across passes: the same purpose keeps the same ID, so that a change of
// its content is an update of that rule.
func (rs *Ruleset) Add(chain, id string, stmts ...Stmt) {
	if _, ok := baseChain(chain); !ok {
		rs.errs = append(rs.errs, fmt.Errorf("nftables rule %s: no chain %q", id, chain))
		return
	}
	if !validID(id) {
		rs.errs = append(rs.errs, fmt.Errorf("nftables rule %s:%s: invalid ID (1 to %d characters, no spaces or quotes)", chain, id, maxIDLen))
		return
	}
	var exprs []expr.Any
	for _, s := range stmts {
		if s.err != nil {
			rs.errs = append(rs.errs, fmt.Errorf("nftables rule %s:%s: %w", chain, id, s.err))
			return
		}
		exprs = append(exprs, s.exprs...)
	}
	r := Rule{Chain: chain, ID: id, exprs: exprs, text: render(exprs)}
	if i, ok := rs.at[ruleAt{chain, id}]; ok {
		if o := rs.rules[chain][i]; o.text != r.text {
			rs.errs = append(rs.errs, fmt.Errorf("nftables rule %s:%s is wanted twice: %q and %q", chain, id, o.text, r.text))
		}
		return
	}
	rs.at[ruleAt{chain, id}] = len(rs.rules[chain])
	rs.rules[chain] = append(rs.rules[chain], r)
}

// Resources returns the table, its sets, the chains that have rules and
// their rules, in the order they are created.
func (rs *Ruleset) Resources() ([]plan.Resource, error) {
	if err := errors.Join(rs.errs...); err != nil {
		return nil, err
	}
	out := []plan.Resource{Table{}}
	for _, s := range rs.sets {
		out = append(out, s)
	}
	for _, name := range chainOrder {
		if len(rs.rules[name]) > 0 {
			c, _ := baseChain(name)
			out = append(out, c)
		}
	}
	for _, name := range chainOrder {
		rules := rs.rules[name]
		seq := &sequence{ids: make([]string, len(rules))}
		for i := range rules {
			seq.ids[i] = rules[i].ID
		}
		for i, r := range rules {
			r.seq, r.idx = seq, i
			out = append(out, r)
		}
	}
	return out, nil
}

// hostUint32 reads a value nft keeps in host byte order (marks, ct bits).
func hostUint32(b []byte) (uint32, bool) {
	if len(b) != 4 {
		return 0, false
	}
	return binary.NativeEndian.Uint32(b), true
}

package nftables

import (
	"fmt"

	"github.com/google/nftables/expr"
)

// ICMPv6Code is the code of an ICMPv6 destination unreachable that a
// reject statement sends.
type ICMPv6Code uint8

// ICMPv6 destination unreachable codes (RFC 4443, 3.1) braid sends.
const (
	// ICMPv6PolicyFail (5): the source address failed ingress/egress
	// policy. A host that gets it for a connection attempt tries its next
	// source address or address family at once (RFC 6724's fallback,
	// Happy Eyeballs), instead of waiting for a timeout.
	ICMPv6PolicyFail ICMPv6Code = 5
)

// nftRejectICMPUnreach is NFT_REJECT_ICMP_UNREACH: an ICMP (or, for an
// IPv6 packet, ICMPv6) destination unreachable with the statement's code.
const nftRejectICMPUnreach = 0

// icmpv6CodeNames are nft's names of the codes, as `nft list` prints them.
var icmpv6CodeNames = map[ICMPv6Code]string{
	0: "no-route", 1: "admin-prohibited", 3: "addr-unreachable", 4: "port-unreachable",
	ICMPv6PolicyFail: "policy-fail", 6: "reject-route",
}

// RejectICMPv6 answers an IPv6 packet with an ICMPv6 destination
// unreachable of the given code, and drops it. The rule must match IPv6
// only (an ip6 address match before it).
func RejectICMPv6(code ICMPv6Code) Stmt {
	if _, ok := icmpv6CodeNames[code]; !ok {
		return Stmt{err: fmt.Errorf("reject with ICMPv6 code %d: not a destination unreachable code nft names", code)}
	}
	return Stmt{exprs: []expr.Any{&expr.Reject{Type: nftRejectICMPUnreach, Code: uint8(code)}}}
}

// nftRejectICMPXUnreach is NFT_REJECT_ICMPX_UNREACH: a destination
// unreachable in the packet's own family (ICMP for IPv4, ICMPv6 for
// IPv6), with a code both have; nftRejectICMPXPortUnreach
// (NFT_REJECT_ICMPX_PORT_UNREACH) is port unreachable.
const (
	nftRejectICMPXUnreach     = 2
	nftRejectICMPXPortUnreach = 1
)

// RejectPortUnreachable answers a packet of either family with a port
// unreachable, ICMP (type 3, code 3) for IPv4 and ICMPv6 (type 1, code 4)
// for IPv6, and drops it: what a host without a socket on the port
// answers. A client's connected UDP socket gets ECONNREFUSED at once. nft
// writes it "reject" (icmpx port-unreachable is its default).
func RejectPortUnreachable() Stmt {
	return Stmt{exprs: []expr.Any{&expr.Reject{Type: nftRejectICMPXUnreach, Code: nftRejectICMPXPortUnreach}}}
}

// reject renders a reject statement as `nft list` does: icmpx port
// unreachable (either family), or an ICMPv6 code when the rule matched
// IPv6 before it; anything else is written out raw.
func (r *renderer) reject(e *expr.Reject) {
	if e.Type == nftRejectICMPXUnreach && e.Code == nftRejectICMPXPortUnreach {
		r.emit("reject")
		return
	}
	name, ok := icmpv6CodeNames[ICMPv6Code(e.Code)]
	if e.Type != nftRejectICMPUnreach || !ok || !r.nfSet || r.nfproto != nfprotoIPv6 {
		r.raw(e)
		return
	}
	r.emit("reject with icmpv6 " + name)
}

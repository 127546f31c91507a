package dataplane

import "github.com/braid-router/braid/sessions/ppp/frame"

// The overhead of carrying an IPv6 packet in the tunnel, octet by octet,
// from the outside in: what the uplink's MTU must hold beside it.
const (
	// IPv4Overhead is the outer IPv4 header (no options).
	IPv4Overhead = 20
	// UDPOverhead is the UDP header.
	UDPOverhead = 8
	// L2TPOverhead is an L2TPv2 data header as braid writes it (RFC 2661
	// section 3.1): flags and version, Tunnel ID, Session ID; no Length,
	// no sequence numbers, no offset.
	L2TPOverhead = 6
	// SequenceOverhead is what Ns and Nr add to the L2TP data header when
	// the LNS asks for sequenced data (Sequencing Required).
	SequenceOverhead = 4
	// PPPOverhead is the PPP header braid writes: Address, Control and a
	// two-octet Protocol field (package frame never compresses them).
	PPPOverhead = frame.HeaderLen
	// Overhead is the whole overhead of an unsequenced data message.
	Overhead = IPv4Overhead + UDPOverhead + L2TPOverhead + PPPOverhead
)

// MinMTU is the smallest MTU IPv6 allows on a link (RFC 8200 section 5);
// Linux disables IPv6 on a link below it.
const MinMTU = 1280

// MTU returns the MTU of the tunnel's link for an uplink whose MTU is
// uplinkMTU: the largest IPv6 packet that, framed in PPP and an L2TP data
// message in UDP over IPv4, still fits the uplink unfragmented. It does
// not know the PPP peer's MRU: the session takes the smaller of the two.
// A result below MinMTU means IPv6 cannot run over this uplink.
func MTU(uplinkMTU int) int {
	return max(uplinkMTU-Overhead, 0)
}

// SequencedMTU is MTU for a session whose data messages carry sequence
// numbers.
func SequencedMTU(uplinkMTU int) int {
	return max(uplinkMTU-Overhead-SequenceOverhead, 0)
}

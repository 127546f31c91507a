// Package upstream asks the resolvers the box's DNS forwarder forwards to:
// the aggregation peer's (DNS over TCP inside the shadowsocks stream, the
// peer dialling aggregation.peer.dns), an uplink's learnt resolvers
// (bound to that uplink by its socket mark) and explicit addresses, in
// order of preference, with their health tracked so that a dead one is
// skipped, and the healthy uplinks' own resolvers as the last resort.
package upstream

import "net/netip"

// Resolver is one upstream resolver, as the compiler lists it.
type Resolver struct {
	// Name is what status shows: "peer", "uplink:NAME" or the address
	// as the spec wrote it.
	Name string
	// Addr is the resolver's address and port. For the peer, the
	// resolver the peer asks (aggregation.peer.dns).
	Addr netip.AddrPort
	// Peer: asked through the aggregation peer, in the shadowsocks
	// stream over Multipath TCP (Addr is the peer's target).
	Peer bool
	// Uplink names the uplink the query leaves by ("" for the box's
	// routing, and for the peer).
	Uplink string
	// Mark is the socket mark (SO_MARK) that sends the query out of
	// Uplink: its table's number; 0 for the box's routing.
	Mark uint32
}

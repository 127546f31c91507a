// Package dhcp6 is braid's DHCPv6 client session for prefix delegation
// (RFC 8415's IA_PD): on an uplink whose IPv6 comes from router
// advertisements and asks for a prefix (ipv6.ra.dhcpv6.prefixDelegation),
// or on a tunnel's PPP link (l2tp.ipv6.dhcpv6.prefixDelegation). It asks
// the link's DHCPv6 servers for a prefix, keeps it (renewing at T1,
// rebinding at T2), gives it back when its section leaves the spec, and
// reports each delegated prefix as a facts.Prefix, which the compiler
// turns into the LAN's address, the unreachable route for the rest of the
// prefix and the rule that sends the prefix's traffic out where it came
// from (lan.ipv6.fromUplink, fromTunnel).
//
// The protocol itself, a pure state machine with RFC 8415's timers, is
// package rfc8415; this package owns the socket, the clock, the client's
// identity (DUID and IAID) and the facts. It assumes nothing of the link
// but a usable IPv6 link-local address: an Ethernet uplink and a TUN
// point-to-point link without a MAC address are the same to it.
package dhcp6

import (
	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/dhcp6/rfc8415"
)

// Kind is the session kind: "session[dhcp6/UPLINK]" or
// "session[dhcp6/TUNNEL]".
const Kind = "dhcp6"

// Config is what the client needs: where it asks, for whom, and whose
// hardware address makes its DUID.
type Config struct {
	// For names what the delegation is for, as its facts say:
	// "uplink/NAME" or "tunnel/NAME".
	For string
	// Interface is the link the client asks on (an uplink's link, a
	// tunnel's TUN link): it sends from the link's link-local address to
	// All_DHCP_Relay_Agents_and_Servers (ff02::1:2).
	Interface string
	// DUIDLink is the link whose Ethernet address makes the client's
	// DUID-LL (RFC 8415 section 11.4): the uplink's own, or the uplink a
	// tunnel leaves by. Empty, or a link without an Ethernet address,
	// gives a DUID-LLT created once and kept in braid's state directory.
	DUIDLink string
	// Timing shortens the client's timers (tests); the compiler leaves it
	// zero, which is RFC 8415's. It is not part of the plan.
	Timing rfc8415.Timing
}

// Fields implements session.Config.
func (c Config) Fields() []plan.Field {
	return session.Fields("for", c.For, "interface", c.Interface, "duidLink", c.DUIDLink)
}

// Secrets implements session.Config: the client has none.
func (Config) Secrets() []*api.Secret { return nil }

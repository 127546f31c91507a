package advert

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/ndp"
)

// The router side of router discovery: what braid reads of the LAN's hosts
// (their router solicitations) and writes to them (its router
// advertisements), on the LAN where braid is the router.

// rsHeaderLen is the fixed part of a router solicitation: type, code,
// checksum, reserved (RFC 4861 section 4.1).
const rsHeaderLen = 8

// MaxRouterLifetime is the longest Router Lifetime an advert may carry
// (RFC 4861 sections 4.2 and 6.2.1: 9000 seconds).
const MaxRouterLifetime = 9000 * time.Second

// MinLinkMTU is the smallest MTU of a link that carries IPv6 (RFC 8200
// section 5): an MTU option below it is an error.
const MinLinkMTU = 1280

// RouterSolicitation is a valid router solicitation from a host on the
// link.
type RouterSolicitation struct {
	// Source is its IP source, without a zone: the host's link-local (or
	// other unicast) address, or the unspecified address of a host that
	// has none yet.
	Source netip.Addr
	// LinkLayer is its source link-layer address option: the host's MAC
	// address; nil when it has none, or one braid cannot read.
	LinkLayer net.HardwareAddr
}

// ParseSolicitation reads the ICMPv6 message b (from its ICMPv6 header
// on, as a raw ICMPv6 socket returns it), received from src with hop
// limit hopLimit. It returns the solicitation of a valid router
// solicitation, an error wrapping ErrInvalid for one that fails RFC
// 4861's checks (section 6.1.1), which a router silently discards, and
// ErrUnread for any other message. The kernel has checked the ICMPv6
// checksum of what a raw ICMPv6 socket returns.
func ParseSolicitation(b []byte, src netip.Addr, hopLimit int) (*RouterSolicitation, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: %d bytes", ErrInvalid, len(b))
	}
	if b[0] != typeRouterSolicitation {
		return nil, ErrUnread
	}
	if b[1] != 0 {
		return nil, fmt.Errorf("%w: code %d", ErrInvalid, b[1])
	}
	if hopLimit != HopLimit {
		return nil, fmt.Errorf("%w: hop limit %d, not from the link", ErrInvalid, hopLimit)
	}
	if len(b) < rsHeaderLen {
		return nil, fmt.Errorf("%w: solicitation of %d bytes", ErrInvalid, len(b))
	}
	src = src.WithZone("")
	if !src.Is6() || src.Is4In6() || src.IsMulticast() {
		return nil, fmt.Errorf("%w: solicitation from %s", ErrInvalid, src)
	}
	opts, err := splitOptions(b[rsHeaderLen:])
	if err != nil {
		return nil, err
	}
	rs := &RouterSolicitation{Source: src}
	for _, o := range opts {
		if o[0] != optSourceLinkLayer {
			continue
		}
		if src.IsUnspecified() {
			return nil, fmt.Errorf("%w: a solicitation from the unspecified address with a source link-layer address", ErrInvalid)
		}
		if l, ok := decodeOption[*ndp.LinkLayerAddress](b[:rsHeaderLen], o); ok && l.Direction == ndp.Source {
			rs.LinkLayer = l.Addr
		}
	}
	return rs, nil
}

// Advertisement returns the router advertisement a describes (RFC 4861
// section 4.2), for ndp to write: its options in the order source
// link-layer address, MTU, prefix information (RFC 4861 section 4.6),
// RDNSS (RFC 8106 section 5.1). a.Router, the source, is the socket's
// business, and a.Skipped is ignored. It refuses what a host would
// discard or misread: a router lifetime over MaxRouterLifetime, a
// lifetime past Infinite, a prefix whose preferred lifetime exceeds its
// valid lifetime (RFC 4862 section 5.5.3 c), host bits in a prefix, an
// MTU under MinLinkMTU, an RDNSS option without servers or with one that
// is not a unicast address, a link-layer address that is not a MAC
// address.
func Advertisement(a *Advert) (ndp.Message, error) {
	if a.RouterLifetime < 0 || a.RouterLifetime > MaxRouterLifetime {
		return nil, fmt.Errorf("router lifetime %v: want 0 to %v", a.RouterLifetime, MaxRouterLifetime)
	}
	if a.RetransTimer < 0 || a.RetransTimer/time.Millisecond > 0xffffffff {
		return nil, fmt.Errorf("retrans timer %v out of range", a.RetransTimer)
	}
	ra := &ndp.RouterAdvertisement{
		CurrentHopLimit:      a.HopLimit,
		ManagedConfiguration: a.Managed,
		OtherConfiguration:   a.Other,
		RouterLifetime:       a.RouterLifetime,
		RetransmitTimer:      a.RetransTimer,
	}
	if a.LinkLayer != nil {
		if len(a.LinkLayer) != 6 {
			return nil, fmt.Errorf("source link-layer address %s: want a MAC address", a.LinkLayer)
		}
		ra.Options = append(ra.Options, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: a.LinkLayer})
	}
	if a.MTU != 0 {
		if a.MTU < MinLinkMTU {
			return nil, fmt.Errorf("MTU %d: below %d, the least a link with IPv6 has", a.MTU, MinLinkMTU)
		}
		ra.Options = append(ra.Options, ndp.NewMTU(a.MTU))
	}
	for _, p := range a.Prefixes {
		switch {
		case !p.Prefix.IsValid() || !p.Prefix.Addr().Is6() || p.Prefix.Addr().Is4In6():
			return nil, fmt.Errorf("prefix %s: not an IPv6 prefix", p.Prefix)
		case p.Prefix != p.Prefix.Masked():
			return nil, fmt.Errorf("prefix %s: host bits set (want %s)", p.Prefix, p.Prefix.Masked())
		case !lifetime(p.Valid) || !lifetime(p.Preferred):
			return nil, fmt.Errorf("prefix %s: lifetimes %v and %v: want 0 to %v", p.Prefix, p.Valid, p.Preferred, Infinite)
		case p.Preferred > p.Valid:
			return nil, fmt.Errorf("prefix %s: preferred lifetime %v beyond its valid lifetime %v", p.Prefix, p.Preferred, p.Valid)
		}
		ra.Options = append(ra.Options, &ndp.PrefixInformation{
			PrefixLength:                   uint8(p.Prefix.Bits()),
			OnLink:                         p.OnLink,
			AutonomousAddressConfiguration: p.Autonomous,
			ValidLifetime:                  p.Valid,
			PreferredLifetime:              p.Preferred,
			Prefix:                         p.Prefix.Addr(),
		})
	}
	for _, d := range a.DNS {
		if len(d.Servers) == 0 {
			return nil, fmt.Errorf("an RDNSS option without servers")
		}
		if !lifetime(d.Lifetime) {
			return nil, fmt.Errorf("RDNSS lifetime %v: want 0 to %v", d.Lifetime, Infinite)
		}
		for _, s := range d.Servers {
			if !s.Is6() || s.Is4In6() || s.IsMulticast() || s.IsUnspecified() || s.IsLoopback() || s.Zone() != "" {
				return nil, fmt.Errorf("RDNSS server %s: not a unicast IPv6 address", s)
			}
		}
		ra.Options = append(ra.Options, &ndp.RecursiveDNSServer{Lifetime: d.Lifetime, Servers: d.Servers})
	}
	return ra, nil
}

// lifetime reports whether d fits a 32-bit lifetime in seconds.
func lifetime(d time.Duration) bool {
	return d >= 0 && d <= Infinite
}

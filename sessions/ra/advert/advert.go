// Package advert is braid's neighbour discovery codec, for both sides of
// router discovery: on an uplink, it reads what braid's RA session hears
// (router advertisements, and the neighbour messages that say a tentative
// address is taken) and writes what it sends (router solicitations and
// duplicate address detection probes); on the LAN, it reads the router
// solicitations of LAN hosts and writes braid's own router advertisements
// (router.go). RFC 4861, RFC 4862, RFC 7527 and RFC 8106. It has no
// sockets and no clock.
//
// The messages and their options are decoded and encoded by
// github.com/mdlayher/ndp. This package adds what ndp lacks:
//
//   - RFC 4861's validity checks (sections 6.1.2, 7.1.1 and 7.1.2): the
//     hop limit of 255, code 0, the minimum lengths, a link-local source
//     for an advert, no option of length zero;
//   - options read one at a time: Parse walks the option list itself and
//     hands ndp each option braid reads (prefix information, RDNSS, MTU,
//     source link-layer address) on its own, so that an option braid does not read, or a malformed one, is
//     skipped as RFC 4861 section 4.6 asks, where ndp.ParseMessage fails
//     the whole advert (a DNS search list with a name ndp refuses, a
//     captive portal URI that is not ASCII);
//   - a probe from the unspecified address: the IPv6 header of a DAD
//     probe (RFC 4862 section 5.4.2), which braid sends on a raw IPv6
//     socket because the kernel gives what a raw ICMPv6 socket sends a
//     source address of the link's.
package advert

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/ndp"
)

// ICMPv6 types braid reads or writes (RFC 4861 section 4).
const (
	typeRouterSolicitation    = 133
	typeRouterAdvertisement   = 134
	typeNeighborSolicitation  = 135
	typeNeighborAdvertisement = 136
)

// Option types braid reads.
const (
	optSourceLinkLayer   = 1
	optPrefixInformation = 3
	optMTU               = 5
	optNonce             = 14
	optRDNSS             = 25
)

// Fixed lengths, from the ICMPv6 header on.
const (
	raHeaderLen = 16 // type, code, checksum, hop limit, flags, lifetime, reachable, retrans
	nHeaderLen  = 24 // type, code, checksum, flags, target
	ipv6Len     = 40 // the IPv6 header
)

// HopLimit is the hop limit of every neighbour discovery message: a
// message with another one was forwarded by a router, and is not from the
// link (RFC 4861 section 3.1).
const HopLimit = 255

// Infinite is the lifetime 0xffffffff seconds: forever (RFC 4861 section
// 4.6.2, RFC 8106 section 5.1).
const Infinite = ndp.Infinity

// Errors of Parse.
var (
	// ErrInvalid wraps why a message failed RFC 4861's validity checks;
	// it is silently discarded.
	ErrInvalid = errors.New("invalid neighbour discovery message")
	// ErrUnread is a valid message of a type braid does not read (a router
	// solicitation from another host, a redirect).
	ErrUnread = errors.New("a message braid does not read")
)

// Message is what Parse read: exactly one of Advert and Neighbor.
type Message struct {
	Advert   *Advert
	Neighbor *Neighbor
}

// Advert is a valid router advertisement, as braid reads it, and as
// Advertisement writes one.
type Advert struct {
	// Router is the advert's source: the router's link-local address,
	// without a zone.
	Router netip.Addr
	// HopLimit is the Cur Hop Limit hosts should use; zero leaves it
	// unspecified.
	HopLimit uint8
	// RouterLifetime is how long the router is a default router; zero
	// says it is not one (any more).
	RouterLifetime time.Duration
	// RetransTimer is the time between neighbour solicitations the link
	// uses; zero leaves it unspecified.
	RetransTimer time.Duration
	// Managed and Other are the M and O flags: addresses, or other
	// configuration, from DHCPv6.
	Managed, Other bool
	// Prefixes are the prefix information options, in order.
	Prefixes []Prefix
	// DNS are the recursive DNS server options, in order.
	DNS []RDNSS
	// MTU is the MTU option's link MTU (RFC 4861 section 4.6.4); zero
	// when the advert has none.
	MTU uint32
	// LinkLayer is the source link-layer address option: the router's
	// MAC address; nil when the advert has none.
	LinkLayer net.HardwareAddr
	// Skipped counts the options braid reads that were malformed, and
	// skipped.
	Skipped int
}

// Prefix is a prefix information option (RFC 4861 section 4.6.2).
type Prefix struct {
	// Prefix is the advertised prefix, its host bits cleared.
	Prefix netip.Prefix
	// OnLink is the L flag, Autonomous the A flag: addresses may be formed
	// in the prefix (SLAAC).
	OnLink, Autonomous bool
	// Valid and Preferred are the prefix's lifetimes; Infinite is
	// forever.
	Valid, Preferred time.Duration
}

// RDNSS is a recursive DNS server option (RFC 8106 section 5.1).
type RDNSS struct {
	// Lifetime is how long the servers may be used; zero withdraws them,
	// Infinite is forever.
	Lifetime time.Duration
	// Servers are the option's unicast addresses (others are dropped).
	Servers []netip.Addr
}

// Neighbor is a valid neighbour solicitation or advertisement, which
// duplicate address detection listens for.
type Neighbor struct {
	// Advertisement is set for a neighbour advertisement, unset for a
	// solicitation.
	Advertisement bool
	// Target is the address the message is about.
	Target netip.Addr
	// Source is the message's IP source, without a zone: the unspecified
	// address for another node's DAD probe.
	Source netip.Addr
	// Nonce is a solicitation's nonce option (RFC 7527), if it has one.
	Nonce []byte
}

// Parse reads the ICMPv6 message b (from its ICMPv6 header on, as a raw
// ICMPv6 socket returns it), received from src with hop limit hopLimit.
// It returns an Advert or a Neighbor for a valid router advertisement,
// neighbour solicitation or neighbour advertisement, an error wrapping
// ErrInvalid for one that fails RFC 4861's checks, and ErrUnread for
// other messages. The kernel has checked the ICMPv6 checksum of what a
// raw ICMPv6 socket returns.
func Parse(b []byte, src netip.Addr, hopLimit int) (Message, error) {
	if len(b) < 4 {
		return Message{}, fmt.Errorf("%w: %d bytes", ErrInvalid, len(b))
	}
	switch b[0] {
	case typeRouterAdvertisement, typeNeighborSolicitation, typeNeighborAdvertisement:
	default:
		return Message{}, ErrUnread
	}
	if b[1] != 0 {
		return Message{}, fmt.Errorf("%w: code %d", ErrInvalid, b[1])
	}
	if hopLimit != HopLimit {
		return Message{}, fmt.Errorf("%w: hop limit %d, not from the link", ErrInvalid, hopLimit)
	}
	src = src.WithZone("")
	if !src.Is6() || src.Is4In6() {
		return Message{}, fmt.Errorf("%w: source %s is not IPv6", ErrInvalid, src)
	}
	if b[0] == typeRouterAdvertisement {
		a, err := parseAdvert(b, src)
		if err != nil {
			return Message{}, err
		}
		return Message{Advert: a}, nil
	}
	n, err := parseNeighbor(b, src)
	if err != nil {
		return Message{}, err
	}
	return Message{Neighbor: n}, nil
}

// parseAdvert checks and reads a router advertisement (RFC 4861 sections
// 4.2 and 6.1.2).
func parseAdvert(b []byte, src netip.Addr) (*Advert, error) {
	if !src.IsLinkLocalUnicast() {
		return nil, fmt.Errorf("%w: advert from %s, not a link-local address", ErrInvalid, src)
	}
	if len(b) < raHeaderLen {
		return nil, fmt.Errorf("%w: advert of %d bytes", ErrInvalid, len(b))
	}
	opts, err := splitOptions(b[raHeaderLen:])
	if err != nil {
		return nil, err
	}
	m, err := ndp.ParseMessage(b[:raHeaderLen])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	ra, ok := m.(*ndp.RouterAdvertisement)
	if !ok {
		return nil, fmt.Errorf("%w: ndp read a %T", ErrInvalid, m)
	}
	a := &Advert{
		Router:         src,
		HopLimit:       ra.CurrentHopLimit,
		RouterLifetime: ra.RouterLifetime,
		RetransTimer:   ra.RetransmitTimer,
		Managed:        ra.ManagedConfiguration,
		Other:          ra.OtherConfiguration,
	}
	for _, o := range opts {
		switch o[0] {
		case optPrefixInformation:
			pi, ok := decodeOption[*ndp.PrefixInformation](b[:raHeaderLen], o)
			if !ok {
				a.Skipped++
				continue
			}
			p := netip.PrefixFrom(pi.Prefix, int(pi.PrefixLength))
			if !p.IsValid() || !p.Addr().Is6() {
				a.Skipped++
				continue
			}
			a.Prefixes = append(a.Prefixes, Prefix{Prefix: p.Masked(), OnLink: pi.OnLink,
				Autonomous: pi.AutonomousAddressConfiguration, Valid: pi.ValidLifetime, Preferred: pi.PreferredLifetime})
		case optRDNSS:
			r, ok := decodeOption[*ndp.RecursiveDNSServer](b[:raHeaderLen], o)
			if !ok {
				a.Skipped++
				continue
			}
			d := RDNSS{Lifetime: r.Lifetime}
			for _, s := range r.Servers {
				if s.Is6() && !s.Is4In6() && !s.IsMulticast() && !s.IsUnspecified() && !s.IsLoopback() {
					d.Servers = append(d.Servers, s)
				}
			}
			if len(d.Servers) > 0 {
				a.DNS = append(a.DNS, d)
			}
		case optMTU:
			// ndp reads an MTU option of any length; RFC 4861 4.6.4 says 1.
			m, ok := decodeOption[*ndp.MTU](b[:raHeaderLen], o)
			if !ok || len(o) != 8 {
				a.Skipped++
				continue
			}
			a.MTU = m.MTU
		case optSourceLinkLayer:
			l, ok := decodeOption[*ndp.LinkLayerAddress](b[:raHeaderLen], o)
			if !ok || l.Direction != ndp.Source {
				a.Skipped++
				continue
			}
			a.LinkLayer = l.Addr
		}
	}
	return a, nil
}

// parseNeighbor checks and reads a neighbour solicitation or
// advertisement (RFC 4861 sections 4.3, 4.4, 7.1.1 and 7.1.2).
func parseNeighbor(b []byte, src netip.Addr) (*Neighbor, error) {
	if len(b) < nHeaderLen {
		return nil, fmt.Errorf("%w: neighbour message of %d bytes", ErrInvalid, len(b))
	}
	opts, err := splitOptions(b[nHeaderLen:])
	if err != nil {
		return nil, err
	}
	n := &Neighbor{Advertisement: b[0] == typeNeighborAdvertisement, Source: src}
	n.Target = netip.AddrFrom16([16]byte(b[8:24]))
	if n.Target.IsMulticast() {
		return nil, fmt.Errorf("%w: target %s is multicast", ErrInvalid, n.Target)
	}
	if src.IsMulticast() {
		return nil, fmt.Errorf("%w: source %s is multicast", ErrInvalid, src)
	}
	for _, o := range opts {
		switch o[0] {
		case optSourceLinkLayer:
			if !n.Advertisement && src.IsUnspecified() {
				// A DAD probe carries no link-layer address.
				return nil, fmt.Errorf("%w: a solicitation from the unspecified address with a source link-layer address", ErrInvalid)
			}
		case optNonce:
			if !n.Advertisement {
				// The nonce is opaque: its bytes are all braid compares.
				n.Nonce = append([]byte(nil), o[2:]...)
			}
		}
	}
	return n, nil
}

// splitOptions cuts an option list into its options (type, length in
// units of 8 octets, value), refusing an option of length zero or one
// that runs past the end (RFC 4861 section 4.6).
func splitOptions(b []byte) ([][]byte, error) {
	var opts [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("%w: %d bytes left after the last option", ErrInvalid, len(b))
		}
		n := int(b[1]) * 8
		switch {
		case n == 0:
			return nil, fmt.Errorf("%w: option %d of length zero", ErrInvalid, b[0])
		case n > len(b):
			return nil, fmt.Errorf("%w: option %d of %d bytes, %d left", ErrInvalid, b[0], n, len(b))
		}
		opts = append(opts, b[:n])
		b = b[n:]
	}
	return opts, nil
}

// decodeOption has ndp decode one option on its own, as the only option
// of a router advertisement or solicitation with header hdr.
func decodeOption[T ndp.Option](hdr, opt []byte) (T, bool) {
	var zero T
	msg := make([]byte, 0, len(hdr)+len(opt))
	msg = append(append(msg, hdr...), opt...)
	m, err := ndp.ParseMessage(msg)
	if err != nil {
		return zero, false
	}
	var opts []ndp.Option
	switch m := m.(type) {
	case *ndp.RouterAdvertisement:
		opts = m.Options
	case *ndp.RouterSolicitation:
		opts = m.Options
	}
	if len(opts) != 1 {
		return zero, false
	}
	o, ok := opts[0].(T)
	return o, ok
}

// Solicitation returns a router solicitation (RFC 4861 section 4.1) with
// mac as its source link-layer address option, for a link-local source;
// with no mac (a source of the unspecified address) it has no option.
func Solicitation(mac net.HardwareAddr) ndp.Message {
	rs := &ndp.RouterSolicitation{}
	if len(mac) > 0 {
		rs.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}}
	}
	return rs
}

// NonceLen is the length of the nonces braid puts in its DAD probes: the
// smallest RFC 7527 allows, as the kernel's.
const NonceLen = 6

// Probe returns a duplicate address detection probe for target (RFC 4862
// section 5.4.2): a whole IPv6 packet, header included, from the
// unspecified address to target's solicited-node multicast address (dst),
// hop limit 255, holding a neighbour solicitation for target with nonce
// as its nonce option (RFC 7527 section 4.1). nonce is NonceLen bytes.
func Probe(target netip.Addr, nonce []byte) (pkt []byte, dst netip.Addr, err error) {
	if len(nonce) != NonceLen {
		return nil, netip.Addr{}, fmt.Errorf("a DAD probe's nonce is %d bytes, not %d", len(nonce), NonceLen)
	}
	dst, err = ndp.SolicitedNodeMulticast(target)
	if err != nil {
		return nil, netip.Addr{}, fmt.Errorf("DAD probe for %s: %w", target, err)
	}
	src := netip.IPv6Unspecified()
	ns := &ndp.NeighborSolicitation{TargetAddress: target, Options: []ndp.Option{
		&ndp.RawOption{Type: optNonce, Length: 1, Value: nonce},
	}}
	icmp, err := ndp.MarshalMessageChecksum(ns, src, dst)
	if err != nil {
		return nil, netip.Addr{}, fmt.Errorf("DAD probe for %s: %w", target, err)
	}
	pkt = make([]byte, ipv6Len, ipv6Len+len(icmp))
	pkt[0] = 6 << 4 // version 6, traffic class and flow label 0
	binary.BigEndian.PutUint16(pkt[4:6], uint16(len(icmp)))
	pkt[6] = 58 // ICMPv6
	pkt[7] = HopLimit
	s, d := src.As16(), dst.As16()
	copy(pkt[8:24], s[:])
	copy(pkt[24:40], d[:])
	return append(pkt, icmp...), dst, nil
}

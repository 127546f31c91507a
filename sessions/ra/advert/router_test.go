package advert

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
)

var (
	hostLL  = netip.MustParseAddr("fe80::8c2a:1bff:fe3d:4e5f")
	hostMAC = net.HardwareAddr{0x8e, 0x2a, 0x1b, 0x3d, 0x4e, 0x5f}
)

// kernelRS is a router solicitation as Linux sends it when a link comes
// up: type 133, code 0, checksum, reserved, the source link-layer
// address.
const kernelRS = `85 00 7c 3b 00 00 00 00 01 01 8e 2a 1b 3d 4e 5f`

// RFC 4861 section 6.1.1: the checks a router makes of a solicitation,
// each failing one discarded; and what braid reads of a valid one.
func TestParseSolicitation(t *testing.T) {
	rs := unhex(t, kernelRS)
	withCode := append([]byte(nil), rs...)
	withCode[1] = 1
	unspec := netip.IPv6Unspecified()
	tests := []struct {
		name    string
		b       []byte
		src     netip.Addr
		hop     int
		want    *RouterSolicitation
		wantErr error
	}{
		{"the kernel's solicitation", rs, hostLL.WithZone("lan0"), 255, &RouterSolicitation{Source: hostLL, LinkLayer: hostMAC}, nil},
		{"from the unspecified address, no option", unhex(t, "85 00 00 00 00 00 00 00"), unspec, 255, &RouterSolicitation{Source: unspec}, nil},
		{"from a global address", rs, netip.MustParseAddr("2001:db8:50::10"), 255,
			&RouterSolicitation{Source: netip.MustParseAddr("2001:db8:50::10"), LinkLayer: hostMAC}, nil},
		{"an option braid does not read is skipped", unhex(t, "85 00 00 00 00 00 00 00 0e 01 01 02 03 04 05 06"+"01 01 8e 2a 1b 3d 4e 5f"), hostLL, 255,
			&RouterSolicitation{Source: hostLL, LinkLayer: hostMAC}, nil},
		{"a link-layer option braid cannot read (not Ethernet) is skipped", unhex(t, "85 00 00 00 00 00 00 00 01 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00"), hostLL, 255,
			&RouterSolicitation{Source: hostLL}, nil},
		{"hop limit 254: forwarded, not from the link", rs, hostLL, 254, nil, ErrInvalid},
		{"code 1", withCode, hostLL, 255, nil, ErrInvalid},
		{"7 bytes: under 8", rs[:7], hostLL, 255, nil, ErrInvalid},
		{"3 bytes", rs[:3], hostLL, 255, nil, ErrInvalid},
		{"an option of length zero", unhex(t, "85 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00"), hostLL, 255, nil, ErrInvalid},
		{"an option past the end", unhex(t, "85 00 00 00 00 00 00 00 01 02 8e 2a 1b 3d 4e 5f"), hostLL, 255, nil, ErrInvalid},
		{"one byte after the options", unhex(t, kernelRS+"01"), hostLL, 255, nil, ErrInvalid},
		{"from the unspecified address with a source link-layer address", rs, unspec, 255, nil, ErrInvalid},
		{"from a multicast address", rs, netip.MustParseAddr("ff02::1"), 255, nil, ErrInvalid},
		{"from an IPv4 address", rs, netip.MustParseAddr("192.168.50.10"), 255, nil, ErrInvalid},
		{"an advert is not a solicitation", unhex(t, radvdAdvert), radvdRouter, 255, nil, ErrUnread},
		{"nor is a neighbour solicitation", unhex(t, "87 00 00 00 00 00 00 00 20 01 0d b8 01 02 00 00 00 00 00 00 00 00 12 34"), hostLL, 255, nil, ErrUnread},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSolicitation(tt.b, tt.src, tt.hop)
			if !errors.Is(err, tt.wantErr) || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseSolicitation = %+v, %v; want %+v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// lanAdvert is an advert as braid sends it on the LAN: hop limit 64, a
// default router for 30 minutes, its MAC address and link MTU, a /64 for
// SLAAC with RFC 4861's default lifetimes, a resolver for 20 minutes.
func lanAdvert() *Advert {
	return &Advert{
		HopLimit:       64,
		RouterLifetime: 1800 * time.Second,
		LinkLayer:      net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x01},
		MTU:            1500,
		Prefixes: []Prefix{{Prefix: netip.MustParsePrefix("2001:db8:50::/64"), OnLink: true, Autonomous: true,
			Valid: 2592000 * time.Second, Preferred: 604800 * time.Second}},
		DNS: []RDNSS{{Lifetime: 1200 * time.Second, Servers: []netip.Addr{netip.MustParseAddr("2001:db8:50::1")}}},
	}
}

// The advert's bytes, field by field: RFC 4861 sections 4.2 (the header),
// 4.6.1 (source link-layer address), 4.6.4 (MTU), 4.6.2 (prefix
// information) and RFC 8106 section 5.1 (RDNSS). The checksum is the
// kernel's to fill in.
func TestAdvertisementBytes(t *testing.T) {
	m, err := Advertisement(lanAdvert())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ndp.MarshalMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, `
		86 00 00 00   40 00 07 08   00 00 00 00   00 00 00 00
		01 01 02 00 00 00 00 01
		05 01 00 00 00 00 05 dc
		03 04 40 c0 00 27 8d 00 00 09 3a 80 00 00 00 00 20 01 0d b8 00 50 00 00 00 00 00 00 00 00 00 00
		19 03 00 00 00 00 04 b0 20 01 0d b8 00 50 00 00 00 00 00 00 00 00 00 01`)
	if !bytes.Equal(b, want) {
		t.Errorf("advert\n% x\nwant\n% x", b, want)
	}
	// And it reads back as written.
	a := lanAdvert()
	a.Router = radvdRouter
	got, err := Parse(b, radvdRouter, HopLimit)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Advert, a) {
		t.Errorf("read back\n%+v\nwant\n%+v", got.Advert, a)
	}
}

// What braid writes of radvd's advert reads as radvd's: the options come
// in another order, with the same meaning.
func TestAdvertisementRewritesRadvd(t *testing.T) {
	m, err := Parse(unhex(t, radvdAdvert), radvdRouter, HopLimit)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := Advertisement(m.Advert)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ndp.MarshalMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(b, radvdRouter, HopLimit)
	if err != nil || !reflect.DeepEqual(again, m) {
		t.Errorf("rewritten: %+v, %v\nwant %+v", again.Advert, err, m.Advert)
	}
}

// A router lifetime of zero (RFC 4861 section 6.2.5, a router that stops
// advertising), an RDNSS lifetime of zero (RFC 8106 section 5.1: the
// servers must no longer be used) and a prefix deprecated (preferred
// lifetime zero) are written as zeros; an infinite lifetime as all ones.
func TestAdvertisementZeroAndInfinite(t *testing.T) {
	a := lanAdvert()
	a.RouterLifetime = 0
	a.DNS[0].Lifetime = 0
	a.Prefixes[0].Preferred = 0
	a.Prefixes = append(a.Prefixes, Prefix{Prefix: netip.MustParsePrefix("2001:db8:51::/64"), OnLink: true, Autonomous: true, Valid: Infinite, Preferred: Infinite})
	m, err := Advertisement(a)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ndp.MarshalMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	if b[6] != 0 || b[7] != 0 {
		t.Errorf("router lifetime % x, want 0", b[6:8])
	}
	// After the header (16), the link-layer address (8) and the MTU (8).
	pio1, pio2, rdnss := b[32:64], b[64:96], b[96:]
	if !bytes.Equal(pio1[4:12], []byte{0, 0x27, 0x8d, 0, 0, 0, 0, 0}) {
		t.Errorf("deprecated prefix: lifetimes % x, want valid 2592000 and preferred 0", pio1[4:12])
	}
	if !bytes.Equal(pio2[4:12], bytes.Repeat([]byte{0xff}, 8)) {
		t.Errorf("infinite prefix: lifetimes % x, want all ones", pio2[4:12])
	}
	if !bytes.Equal(rdnss[4:8], []byte{0, 0, 0, 0}) {
		t.Errorf("RDNSS lifetime % x, want 0", rdnss[4:8])
	}
}

// What a host would discard or misread is refused.
func TestAdvertisementRefuses(t *testing.T) {
	tests := []struct {
		name   string
		change func(a *Advert)
		want   string
	}{
		{"router lifetime over 9000 s (6.2.1)", func(a *Advert) { a.RouterLifetime = 9001 * time.Second }, "router lifetime"},
		{"negative router lifetime", func(a *Advert) { a.RouterLifetime = -time.Second }, "router lifetime"},
		{"preferred beyond valid (RFC 4862 5.5.3 c)", func(a *Advert) { a.Prefixes[0].Preferred = a.Prefixes[0].Valid + time.Second }, "preferred lifetime"},
		{"a lifetime past 32 bits", func(a *Advert) { a.Prefixes[0].Valid = Infinite + time.Second }, "lifetimes"},
		{"host bits in a prefix", func(a *Advert) { a.Prefixes[0].Prefix = netip.MustParsePrefix("2001:db8:50::1/64") }, "host bits"},
		{"an IPv4 prefix", func(a *Advert) { a.Prefixes[0].Prefix = netip.MustParsePrefix("192.168.50.0/24") }, "not an IPv6 prefix"},
		{"an MTU under 1280", func(a *Advert) { a.MTU = 1279 }, "MTU"},
		{"an RDNSS option without servers", func(a *Advert) { a.DNS[0].Servers = nil }, "without servers"},
		{"a multicast resolver", func(a *Advert) { a.DNS[0].Servers = []netip.Addr{netip.MustParseAddr("ff02::1")} }, "not a unicast"},
		{"an IPv4 resolver", func(a *Advert) { a.DNS[0].Servers = []netip.Addr{netip.MustParseAddr("192.0.2.53")} }, "not a unicast"},
		{"a link-layer address of 8 bytes", func(a *Advert) { a.LinkLayer = make(net.HardwareAddr, 8) }, "link-layer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := lanAdvert()
			tt.change(a)
			if _, err := Advertisement(a); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Advertisement = %v, want an error about %q", err, tt.want)
			}
		})
	}
}

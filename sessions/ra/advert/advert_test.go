package advert

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
)

// unhex decodes hex written with spaces and line breaks.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// radvdAdvert is an advert exactly as radvd 2.19 sent it in the lab
// (captured with tshark -x, from the ICMPv6 header on): router lifetime
// 1800 s; prefix 2001:db8:102::/64 with L and A, valid 3600 s, preferred
// 1800 s; RDNSS 2001:db8:102::53 for 600 s; source link-layer address.
const radvdAdvert = `
86 00 98 a8 40 00 07 08 00 00 00 00 00 00 00 00
03 04 40 c0 00 00 0e 10 00 00 07 08 00 00 00 00 20 01 0d b8 01 02 00 00 00 00 00 00 00 00 00 00
19 03 00 00 00 00 02 58 20 01 0d b8 01 02 00 00 00 00 00 00 00 00 00 53
01 01 7e dc 56 14 11 2e`

var radvdRouter = netip.MustParseAddr("fe80::7cdc:56ff:fe14:112e")

// header is radvd's advert without its options.
const header = `86 00 98 a8 40 00 07 08 00 00 00 00 00 00 00 00`

func TestParseRadvdAdvert(t *testing.T) {
	m, err := Parse(unhex(t, radvdAdvert), radvdRouter.WithZone("wan2"), 255)
	if err != nil {
		t.Fatal(err)
	}
	want := &Advert{
		Router:         radvdRouter,
		HopLimit:       64,
		RouterLifetime: 1800 * time.Second,
		Prefixes: []Prefix{{Prefix: netip.MustParsePrefix("2001:db8:102::/64"), OnLink: true, Autonomous: true,
			Valid: time.Hour, Preferred: 30 * time.Minute}},
		DNS:       []RDNSS{{Lifetime: 10 * time.Minute, Servers: []netip.Addr{netip.MustParseAddr("2001:db8:102::53")}}},
		LinkLayer: net.HardwareAddr{0x7e, 0xdc, 0x56, 0x14, 0x11, 0x2e},
	}
	if !reflect.DeepEqual(m.Advert, want) || m.Neighbor != nil {
		t.Errorf("Parse = %+v %+v\nwant %+v", m.Advert, m.Neighbor, want)
	}
}

// Options braid reads, written field by field after RFC 4861 section
// 4.6.2 and RFC 8106 section 5.1, and what Parse makes of them.
func TestParseOptions(t *testing.T) {
	pio := func(plen byte, flags byte, valid, preferred uint32, prefix string) string {
		b := make([]byte, 32)
		b[0], b[1], b[2], b[3] = 3, 4, plen, flags
		binary.BigEndian.PutUint32(b[4:], valid)
		binary.BigEndian.PutUint32(b[8:], preferred)
		a := netip.MustParseAddr(prefix).As16()
		copy(b[16:], a[:])
		return hex.EncodeToString(b)
	}
	rdnss := func(lifetime uint32, servers ...string) string {
		b := make([]byte, 8, 8+16*len(servers))
		b[0], b[1] = 25, byte(1+2*len(servers))
		binary.BigEndian.PutUint32(b[4:], lifetime)
		for _, s := range servers {
			a := netip.MustParseAddr(s).As16()
			b = append(b, a[:]...)
		}
		return hex.EncodeToString(b)
	}
	// A DNS search list whose name is not a name: ndp refuses it, and with
	// it any message that carries it.
	badDNSSL := "1f 02 00 00 00 00 00 3c 02 ff ff 00 00 00 00 00"
	// A captive portal URI that is not ASCII.
	badPortal := "25 01 ff fe fd fc fb fa"
	tests := []struct {
		name    string
		options string
		want    Advert
	}{
		{"none", "", Advert{}},
		{"a prefix without A: read, the caller decides",
			pio(64, 0x80, 600, 300, "2001:db8:1::"),
			Advert{Prefixes: []Prefix{{Prefix: netip.MustParsePrefix("2001:db8:1::/64"), OnLink: true, Valid: 600 * time.Second, Preferred: 300 * time.Second}}}},
		{"host bits of a prefix are ignored (RFC 4861 4.6.2)",
			pio(48, 0xc0, 0xffffffff, 0xffffffff, "2001:db8:1:2::"),
			Advert{Prefixes: []Prefix{{Prefix: netip.MustParsePrefix("2001:db8:1::/48"), OnLink: true, Autonomous: true, Valid: Infinite, Preferred: Infinite}}}},
		{"prefixes in order",
			pio(64, 0x40, 600, 300, "2001:db8:1::") + pio(64, 0x40, 700, 400, "2001:db8:2::"),
			Advert{Prefixes: []Prefix{
				{Prefix: netip.MustParsePrefix("2001:db8:1::/64"), Autonomous: true, Valid: 600 * time.Second, Preferred: 300 * time.Second},
				{Prefix: netip.MustParsePrefix("2001:db8:2::/64"), Autonomous: true, Valid: 700 * time.Second, Preferred: 400 * time.Second}}}},
		{"a prefix length over 128 is skipped", pio(200, 0xc0, 600, 300, "2001:db8:1::"), Advert{Skipped: 1}},
		{"a prefix option of the wrong length is skipped, the rest is read",
			"03 03 40 c0 00 00 02 58 00 00 01 2c 00 00 00 00 20 01 0d b8 00 01 00 00" + rdnss(60, "2001:db8::53"),
			Advert{Skipped: 1, DNS: []RDNSS{{Lifetime: time.Minute, Servers: []netip.Addr{netip.MustParseAddr("2001:db8::53")}}}}},
		{"RDNSS: two servers, infinite lifetime",
			rdnss(0xffffffff, "2001:db8::53", "2001:db8::54"),
			Advert{DNS: []RDNSS{{Lifetime: Infinite, Servers: []netip.Addr{netip.MustParseAddr("2001:db8::53"), netip.MustParseAddr("2001:db8::54")}}}}},
		{"RDNSS: lifetime zero withdraws",
			rdnss(0, "2001:db8::53"),
			Advert{DNS: []RDNSS{{Servers: []netip.Addr{netip.MustParseAddr("2001:db8::53")}}}}},
		{"RDNSS: multicast and unspecified servers are dropped",
			rdnss(60, "ff02::1", "::", "2001:db8::53"),
			Advert{DNS: []RDNSS{{Lifetime: time.Minute, Servers: []netip.Addr{netip.MustParseAddr("2001:db8::53")}}}}},
		{"RDNSS of length 1 (no server, RFC 8106 5.1: at least 3) is skipped", "19 01 00 00 00 00 00 3c", Advert{Skipped: 1}},
		{"RDNSS of even length (half an address) is skipped",
			"19 02 00 00 00 00 00 3c 20 01 0d b8 00 00 00 00", Advert{Skipped: 1}},
		{"options braid does not read are skipped, even malformed",
			badDNSSL + badPortal + pio(64, 0xc0, 600, 300, "2001:db8:1::"),
			Advert{Prefixes: []Prefix{{Prefix: netip.MustParsePrefix("2001:db8:1::/64"), OnLink: true, Autonomous: true, Valid: 600 * time.Second, Preferred: 300 * time.Second}}}},
		{"MTU (4.6.4): reserved, then 32 bits", "05 01 00 00 00 00 05 dc", Advert{MTU: 1500}},
		{"an MTU option of the wrong length is skipped", "05 02 00 00 00 00 05 dc 00 00 00 00 00 00 00 00", Advert{Skipped: 1}},
		{"source link-layer address (4.6.1)", "01 01 02 00 00 00 00 01", Advert{LinkLayer: net.HardwareAddr{2, 0, 0, 0, 0, 1}}},
		{"a target link-layer address in an advert is not read", "02 01 02 00 00 00 00 01", Advert{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := unhex(t, header+tt.options)
			m, err := Parse(b, radvdRouter, 255)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.Router, want.HopLimit, want.RouterLifetime = radvdRouter, 64, 1800*time.Second
			if !reflect.DeepEqual(*m.Advert, want) {
				t.Errorf("got  %+v\nwant %+v", *m.Advert, want)
			}
		})
	}
	// ndp alone would have dropped the advert with the malformed options.
	if _, err := ndp.ParseMessage(unhex(t, header+badDNSSL)); err == nil {
		t.Error("ndp now reads a malformed DNS search list: the option-by-option reading may go")
	}
}

// RFC 4861's validity checks: a message that fails one is discarded.
func TestParseValidity(t *testing.T) {
	ra := unhex(t, radvdAdvert)
	withCode := append([]byte(nil), ra...)
	withCode[1] = 1
	global := netip.MustParseAddr("2001:db8:102::1")
	tests := []struct {
		name string
		b    []byte
		src  netip.Addr
		hop  int
		want error
	}{
		{"hop limit 64: forwarded, not from the link (6.1.2)", ra, radvdRouter, 64, ErrInvalid},
		{"code 1 (6.1.2)", withCode, radvdRouter, 255, ErrInvalid},
		{"advert from a global address (6.1.2)", ra, global, 255, ErrInvalid},
		{"advert from an IPv4 address", ra, netip.MustParseAddr("10.0.0.1"), 255, ErrInvalid},
		{"advert shorter than 16 bytes (6.1.2)", ra[:15], radvdRouter, 255, ErrInvalid},
		{"option of length zero (6.1.2)", unhex(t, header+"19 00 00 00 00 00 00 00"), radvdRouter, 255, ErrInvalid},
		{"option past the end", unhex(t, header+"03 04 40 c0"), radvdRouter, 255, ErrInvalid},
		{"one byte after the options", unhex(t, header+"01"), radvdRouter, 255, ErrInvalid},
		{"three bytes", ra[:3], radvdRouter, 255, ErrInvalid},
		{"a router solicitation is not read", unhex(t, "85 00 00 00 00 00 00 00"), radvdRouter, 255, ErrUnread},
		{"a redirect is not read", unhex(t, "89 00 00 00 00 00 00 00"), radvdRouter, 255, ErrUnread},
		{"an echo request is not read", unhex(t, "80 00 00 00 00 01 00 01"), global, 64, ErrUnread},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse(tt.b, tt.src, tt.hop)
			if !errors.Is(err, tt.want) {
				t.Errorf("Parse = %+v, %v; want %v", m, err, tt.want)
			}
		})
	}
}

func TestParseNeighbor(t *testing.T) {
	target := netip.MustParseAddr("2001:db8:102::1234")
	ns := func(opts string) []byte {
		return unhex(t, "87 00 00 00 00 00 00 00 20 01 0d b8 01 02 00 00 00 00 00 00 00 00 12 34"+opts)
	}
	na := unhex(t, "88 00 00 00 20 00 00 00 20 01 0d b8 01 02 00 00 00 00 00 00 00 00 12 34 02 01 7e dc 56 14 11 2e")
	unspec := netip.IPv6Unspecified()
	ll := netip.MustParseAddr("fe80::1")
	tests := []struct {
		name    string
		b       []byte
		src     netip.Addr
		want    *Neighbor
		wantErr error
	}{
		{"another node's DAD probe", ns(""), unspec, &Neighbor{Target: target, Source: unspec}, nil},
		{"a DAD probe with a nonce (RFC 7527)", ns("0e 01 01 02 03 04 05 06"), unspec,
			&Neighbor{Target: target, Source: unspec, Nonce: []byte{1, 2, 3, 4, 5, 6}}, nil},
		{"address resolution", ns("01 01 7e dc 56 14 11 2e"), ll, &Neighbor{Target: target, Source: ll}, nil},
		{"a probe with a link-layer address (7.1.1)", ns("01 01 7e dc 56 14 11 2e"), unspec, nil, ErrInvalid},
		{"an advertisement", na, ll, &Neighbor{Advertisement: true, Target: target, Source: ll}, nil},
		{"a multicast target (7.1.1)", unhex(t, "87 00 00 00 00 00 00 00 ff 02 00 00 00 00 00 00 00 00 00 00 00 00 00 01"), ll, nil, ErrInvalid},
		{"shorter than 24 bytes (7.1.1)", ns("")[:23], unspec, nil, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse(tt.b, tt.src, 255)
			if !errors.Is(err, tt.wantErr) || !reflect.DeepEqual(m.Neighbor, tt.want) {
				t.Errorf("Parse = %+v, %v; want %+v, %v", m.Neighbor, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestSolicitation(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x42}
	b, err := ndp.MarshalMessage(Solicitation(mac))
	if err != nil {
		t.Fatal(err)
	}
	// RFC 4861 4.1: type 133, code 0, checksum (the kernel's), reserved,
	// then the source link-layer address option.
	if want := unhex(t, "85 00 00 00 00 00 00 00 01 01 02 00 00 00 00 42"); !bytes.Equal(b, want) {
		t.Errorf("solicitation % x, want % x", b, want)
	}
	if b, _ := ndp.MarshalMessage(Solicitation(nil)); len(b) != 8 {
		t.Errorf("from the unspecified address: % x, want no option", b)
	}
}

// A DAD probe is an IPv6 packet from :: to the solicited-node group,
// whose checksum is right and whose message Parse reads back.
func TestProbe(t *testing.T) {
	target := netip.MustParseAddr("2001:db8:102:0:1234:5678:9abc:def0")
	nonce := []byte{1, 2, 3, 4, 5, 6}
	pkt, dst, err := Probe(target, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddr("ff02::1:ffbc:def0"); dst != want {
		t.Errorf("destination %s, want %s", dst, want)
	}
	want := unhex(t, `60 00 00 00 00 20 3a ff
		00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
		ff 02 00 00 00 00 00 00 00 00 00 01 ff bc de f0`)
	if !bytes.Equal(pkt[:40], want) {
		t.Errorf("IPv6 header\n% x\nwant\n% x", pkt[:40], want)
	}
	icmp := pkt[40:]
	if got := checksum(netip.IPv6Unspecified(), dst, icmp); got != 0 {
		t.Errorf("ICMPv6 checksum does not verify: %#04x", got)
	}
	m, err := Parse(icmp, netip.IPv6Unspecified(), int(pkt[7]))
	if err != nil {
		t.Fatal(err)
	}
	if n := m.Neighbor; n == nil || n.Advertisement || n.Target != target || !bytes.Equal(n.Nonce, nonce) || !n.Source.IsUnspecified() {
		t.Errorf("read back %+v", m.Neighbor)
	}
	if _, _, err := Probe(target, []byte{1}); err == nil {
		t.Error("a one-byte nonce was accepted")
	}
}

// checksum is the ICMPv6 checksum over the pseudo-header (RFC 8200
// section 8.1): 0 when b's own checksum is right.
func checksum(src, dst netip.Addr, b []byte) uint16 {
	s, d := src.As16(), dst.As16()
	var sum uint32
	add := func(p []byte) {
		for i := 0; i+1 < len(p); i += 2 {
			sum += uint32(p[i])<<8 | uint32(p[i+1])
		}
		if len(p)%2 == 1 {
			sum += uint32(p[len(p)-1]) << 8
		}
	}
	add(s[:])
	add(d[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[:4], uint32(len(b)))
	l[7] = 58
	add(l[:])
	add(b)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

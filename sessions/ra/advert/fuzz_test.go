package advert

import (
	"github.com/mdlayher/ndp"

	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// checkMessage is what holds of anything Parse accepts: exactly one kind,
// adverts from link-local routers with canonical IPv6 prefixes and unicast
// resolvers, neighbour messages about unicast targets; and reading the
// same bytes twice gives the same result.
func checkMessage(t *testing.T, b []byte, src netip.Addr, hop int) {
	t.Helper()
	m, err := Parse(b, src, hop)
	if err != nil {
		if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnread) {
			t.Fatalf("an error that is neither ErrInvalid nor ErrUnread: %v", err)
		}
		return
	}
	if (m.Advert == nil) == (m.Neighbor == nil) {
		t.Fatalf("want exactly one of Advert and Neighbor: %+v", m)
	}
	if hop != HopLimit {
		t.Fatalf("accepted a message with hop limit %d", hop)
	}
	if a := m.Advert; a != nil {
		if !a.Router.IsLinkLocalUnicast() || a.Router.Zone() != "" {
			t.Fatalf("advert from %s", a.Router)
		}
		for _, p := range a.Prefixes {
			if !p.Prefix.IsValid() || !p.Prefix.Addr().Is6() || p.Prefix != p.Prefix.Masked() {
				t.Fatalf("prefix %s", p.Prefix)
			}
		}
		for _, d := range a.DNS {
			if len(d.Servers) == 0 {
				t.Fatal("an RDNSS option without servers")
			}
			for _, s := range d.Servers {
				if !s.Is6() || s.IsMulticast() || s.IsUnspecified() || s.IsLoopback() {
					t.Fatalf("resolver %s", s)
				}
			}
		}
	}
	if n := m.Neighbor; n != nil && (n.Target.IsMulticast() || !n.Target.Is6()) {
		t.Fatalf("neighbour message about %s", n.Target)
	}
	again, err := Parse(b, src, hop)
	if err != nil || !reflect.DeepEqual(m, again) {
		t.Fatalf("a second read differs: %+v, %v", again, err)
	}
}

// FuzzParse feeds arbitrary ICMPv6 messages to Parse.
func FuzzParse(f *testing.F) {
	f.Add(unhex(f, radvdAdvert), true, uint8(255))
	f.Add(unhex(f, header+"19 03 00 00 ff ff ff ff 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 53"), true, uint8(255))
	f.Add(unhex(f, "87 00 00 00 00 00 00 00 20 01 0d b8 01 02 00 00 00 00 00 00 00 00 12 34 0e 01 01 02 03 04 05 06"), false, uint8(255))
	f.Add(unhex(f, "88 00 00 00 20 00 00 00 20 01 0d b8 01 02 00 00 00 00 00 00 00 00 12 34 02 01 7e dc 56 14 11 2e"), true, uint8(255))
	f.Add(unhex(f, header+"1f 02 00 00 00 00 00 3c 02 ff ff 00 00 00 00 00"), true, uint8(64))
	f.Fuzz(func(t *testing.T, b []byte, linkLocal bool, hop uint8) {
		src := netip.IPv6Unspecified()
		if linkLocal {
			src = radvdRouter
		}
		checkMessage(t, b, src, int(hop))
	})
}

// FuzzPrefixOption feeds arbitrary bodies of a prefix information option
// (what follows its type and length) to Parse, in radvd's advert header.
func FuzzPrefixOption(f *testing.F) {
	f.Add(unhex(f, "40 c0 00 00 0e 10 00 00 07 08 00 00 00 00 20 01 0d b8 01 02 00 00 00 00 00 00 00 00 00 00"))
	f.Add(unhex(f, "c8 c0 ff ff ff ff ff ff ff ff 00 00 00 00 20 01 0d b8 01 02 00 00 00 00 00 00 00 00 00 00"))
	f.Add([]byte{64})
	hdr := unhex(f, header)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkMessage(t, option(hdr, optPrefixInformation, body), radvdRouter, HopLimit)
	})
}

// FuzzRDNSSOption feeds arbitrary bodies of a recursive DNS server option
// to Parse, in radvd's advert header.
func FuzzRDNSSOption(f *testing.F) {
	f.Add(unhex(f, "00 00 00 00 02 58 20 01 0d b8 01 02 00 00 00 00 00 00 00 00 00 53"))
	f.Add(unhex(f, "00 00 ff ff ff ff ff 02 00 00 00 00 00 00 00 00 00 00 00 00 00 01 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 53"))
	f.Add([]byte{0, 0, 0, 0, 0, 0})
	hdr := unhex(f, header)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkMessage(t, option(hdr, optRDNSS, body), radvdRouter, HopLimit)
	})
}

// option returns the advert header hdr followed by one option of type typ
// holding body, padded to a multiple of 8 bytes (an option's length is in
// units of 8 octets, at most 255 of them).
func option(hdr []byte, typ byte, body []byte) []byte {
	n := (2 + len(body) + 7) / 8 * 8
	if n > 255*8 {
		n, body = 255*8, body[:255*8-2]
	}
	opt := make([]byte, n)
	opt[0], opt[1] = typ, byte(n/8)
	copy(opt[2:], body)
	return append(append([]byte(nil), hdr...), opt...)
}

// FuzzParseSolicitation feeds arbitrary ICMPv6 messages to
// ParseSolicitation: what it accepts came from the link (hop limit 255)
// from a unicast or unspecified IPv6 source, carries no link-layer
// address from the unspecified address, and reads the same twice.
func FuzzParseSolicitation(f *testing.F) {
	f.Add(unhex(f, kernelRS), uint8(1), uint8(255))
	f.Add(unhex(f, "85 00 00 00 00 00 00 00"), uint8(0), uint8(255))
	f.Add(unhex(f, "85 00 00 00 00 00 00 00 0e 01 01 02 03 04 05 06 01 01 8e 2a 1b 3d 4e 5f"), uint8(1), uint8(255))
	f.Add(unhex(f, "85 00 00 00 00 00 00 00 01 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00"), uint8(2), uint8(255))
	f.Add(unhex(f, kernelRS), uint8(3), uint8(64))
	sources := []netip.Addr{netip.IPv6Unspecified(), hostLL, netip.MustParseAddr("2001:db8:50::10"), netip.MustParseAddr("ff02::1")}
	f.Fuzz(func(t *testing.T, b []byte, which, hop uint8) {
		src := sources[int(which)%len(sources)]
		rs, err := ParseSolicitation(b, src, int(hop))
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnread) {
				t.Fatalf("an error that is neither ErrInvalid nor ErrUnread: %v", err)
			}
			if rs != nil {
				t.Fatalf("a solicitation with an error: %+v", rs)
			}
			return
		}
		if hop != HopLimit || len(b) < rsHeaderLen || b[0] != typeRouterSolicitation || b[1] != 0 {
			t.Fatalf("accepted % x with hop limit %d", b, hop)
		}
		if rs.Source != src || rs.Source.IsMulticast() {
			t.Fatalf("source %s, from %s", rs.Source, src)
		}
		if rs.Source.IsUnspecified() && rs.LinkLayer != nil {
			t.Fatal("a link-layer address from the unspecified address")
		}
		if rs.LinkLayer != nil && len(rs.LinkLayer) != 6 {
			t.Fatalf("link-layer address %s", rs.LinkLayer)
		}
		again, err := ParseSolicitation(b, src, int(hop))
		if err != nil || !reflect.DeepEqual(rs, again) {
			t.Fatalf("a second read differs: %+v, %v", again, err)
		}
	})
}

// FuzzAdvertisementRoundTrip writes back every advert Parse accepts:
// Advertisement either refuses it or writes bytes that Parse reads as the
// same advert (less the options it skipped).
func FuzzAdvertisementRoundTrip(f *testing.F) {
	f.Add(unhex(f, radvdAdvert))
	f.Add(unhex(f, header+"05 01 00 00 00 00 05 dc 01 01 02 00 00 00 00 01"))
	f.Add(unhex(f, header+"03 04 40 80 00 00 02 58 00 00 03 84 00 00 00 00 20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b, radvdRouter, HopLimit)
		if err != nil || m.Advert == nil {
			return
		}
		msg, err := Advertisement(m.Advert)
		if err != nil {
			return
		}
		out, err := ndp.MarshalMessage(msg)
		if err != nil {
			t.Fatalf("ndp cannot write what Advertisement built: %v", err)
		}
		again, err := Parse(out, radvdRouter, HopLimit)
		if err != nil {
			t.Fatalf("braid's own advert % x does not parse: %v", out, err)
		}
		want := *m.Advert
		want.Skipped = 0
		if !reflect.DeepEqual(*again.Advert, want) {
			t.Fatalf("round trip\n%+v\nwant\n%+v", *again.Advert, want)
		}
	})
}

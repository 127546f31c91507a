package advert

import (
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

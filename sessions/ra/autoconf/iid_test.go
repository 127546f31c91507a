package autoconf

import (
	"net/netip"
	"testing"
)

// RFC 7217's properties: the same inputs give the same address; a change
// of prefix, interface, counter or key gives another; the address is in
// the prefix.
func TestStableAddress(t *testing.T) {
	base, c := StableAddress(lab, "wan2", 0, key)
	if c != 0 {
		t.Fatalf("counter %d, want 0", c)
	}
	if again, _ := StableAddress(netip.MustParsePrefix("2001:db8:102::77/64"), "wan2", 0, key); again != base {
		t.Errorf("%s then %s: not stable (host bits of the prefix must not matter)", base, again)
	}
	if !lab.Contains(base) {
		t.Errorf("%s is not in %s", base, lab)
	}
	for name, a := range map[string]netip.Addr{
		"another prefix":    first(StableAddress(netip.MustParsePrefix("2001:db8:103::/64"), "wan2", 0, key)),
		"another interface": first(StableAddress(lab, "wan1", 0, key)),
		"another counter":   first(StableAddress(lab, "wan2", 1, key)),
		"another key":       first(StableAddress(lab, "wan2", 0, []byte("another key"))),
	} {
		if a.As16() == base.As16() || netip.PrefixFrom(a, 64).Masked().Addr() == a {
			t.Errorf("%s: %s", name, a)
		}
		// The interface identifier differs, not only the prefix.
		ab, bb := a.As16(), base.As16()
		if [8]byte(ab[8:]) == [8]byte(bb[8:]) {
			t.Errorf("%s: same interface identifier as %s", name, base)
		}
	}
}

func first(a netip.Addr, _ uint8) netip.Addr { return a }

func TestReservedIID(t *testing.T) {
	for iid, want := range map[uint64]bool{
		0:                  true, // subnet-router anycast
		0xfdffffffffffff80: true, // reserved subnet anycast (RFC 2526)
		0xfdffffffffffffff: true,
		0xfdffffffffffff7f: false,
		0xfe00000000000000: false,
		0xffffffffffffffff: false,
		0x02005efffe000000: true, // IANA Ethernet block (RFC 5453)
		0x02005efffe005213: true, // proxy mobile IPv6
		0x02005efffeffffff: true,
		0x02005effff000000: false,
		0x1234567890abcdef: false,
	} {
		if got := reservedIID(iid); got != want {
			t.Errorf("reservedIID(%#x) = %v, want %v", iid, got, want)
		}
	}
}

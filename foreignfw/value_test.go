package foreignfw

import (
	"net/netip"
	"testing"
)

func TestValue(t *testing.T) {
	lan := Prefix(netip.MustParsePrefix("192.168.50.0/24"))
	ip := func(s string) []byte { return netip.MustParseAddr(s).AsSlice() }
	for _, c := range []struct {
		what string
		got  Tri
		want Tri
	}{
		{"a prefix within a wider one", lan.in(ip("192.168.0.0"), ip("192.168.255.255")), True},
		{"a prefix beside another", lan.in(ip("10.0.0.0"), ip("10.255.255.255")), False},
		{"a prefix across a narrower one", lan.in(ip("192.168.50.0"), ip("192.168.50.127")), Maybe},
		{"a point equal", Port(8080).cmp(opEq, be16(8080)), True},
		{"a point unequal", Port(8080).cmp(opNeq, be16(8080)), False},
		{"a range below", Ports(1, 1023).cmp(opLt, be16(1024)), True},
		{"a range across", Ports(1000, 2000).cmp(opGte, be16(1024)), Maybe},
		{"a range above", Ports(2000, 3000).cmp(opGt, be16(1999)), True},
		{"nothing is less than zero", Ports(0, 10).cmp(opLt, be16(0)), False},
		{"the first bytes of a prefix (nft's /16 load)", lan.slice(0, 2).cmp(opEq, ip("192.168.0.0")[:2]), True},
		{"a masked prefix", lan.and(ip("255.255.0.0"), make([]byte, 4)).cmp(opEq, ip("192.168.0.0")), True},
		{"a non-prefix mask over a range is unknown", lan.and(ip("0.0.255.0"), make([]byte, 4)).cmp(opEq, ip("0.0.50.0")), Maybe},
		{"a non-prefix mask over points is exact", Points(hostU32(2), hostU32(6)).and(hostU32(2), make([]byte, 4)).cmp(opNeq, make([]byte, 4)), True},
		{"an address less a prefix", Top(4).Without(netip.MustParsePrefix("192.168.50.0/24")).in(ip("192.168.50.7"), ip("192.168.50.7")), False},
		{"an address less a prefix, beside it", Top(4).Without(netip.MustParsePrefix("192.168.50.0/24")).in(ip("192.168.51.0"), ip("192.168.51.0")), Maybe},
		{"Top is everything", Top(1).cmp(opGte, []byte{0}), True},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s, want %s", c.what, c.got, c.want)
		}
	}
}

func TestFieldsReadWrite(t *testing.T) {
	var fs fields
	fs = fs.write(0, Byte(6)) // a one-byte load zeroes the rest of its word
	fs = fs.write(4, Byte(2)) // NFT_REG32_01
	segs := fs.read(0, 8)     // a concatenation of two fields
	if len(segs) != 4 || join(segs[:2]).cmp(opEq, []byte{6, 0, 0, 0}) != True {
		t.Fatalf("segments %v", segs)
	}
	if got := join(fs.read(0, 8)); got.cmp(opEq, []byte{6, 0, 0, 0, 2, 0, 0, 0}) != True {
		t.Errorf("join: %v", got)
	}
	if got := join(fs.read(8, 4)); got.cmp(opEq, []byte{0, 0, 0, 0}) != Maybe {
		t.Errorf("an unwritten register is unknown: %v", got)
	}
}

package nftables

import (
	"net/netip"
	"slices"
	"testing"

	gnft "github.com/google/nftables"
)

func TestRangesOf(t *testing.T) {
	for _, tt := range []struct {
		in   []string
		want []string
	}{
		{nil, nil},
		{[]string{"192.168.50.0/24"}, []string{"192.168.50.0/24"}},
		{[]string{"10.0.0.1/32", "10.0.0.3/32"}, []string{"10.0.0.1", "10.0.0.3"}},
		// Adjacent and overlapping prefixes merge: the kernel refuses
		// overlapping intervals.
		{[]string{"10.0.0.0/25", "10.0.0.128/25"}, []string{"10.0.0.0/24"}},
		{[]string{"10.0.0.0/8", "10.1.0.0/16", "10.255.255.255/32"}, []string{"10.0.0.0/8"}},
		{[]string{"10.0.0.1/32", "10.0.0.2/32"}, []string{"10.0.0.1-10.0.0.2"}},
		{[]string{"255.255.255.0/24"}, []string{"255.255.255.0/24"}},
		{[]string{"0.0.0.0/0"}, []string{"0.0.0.0/0"}},
		{[]string{"2001:db8::/33", "2001:db8:8000::/33"}, []string{"2001:db8::/32"}},
		{[]string{"::/0"}, []string{"::/0"}},
	} {
		var ps []netip.Prefix
		for _, s := range tt.in {
			ps = append(ps, netip.MustParsePrefix(s))
		}
		var got []string
		for _, r := range rangesOf(ps) {
			got = append(got, r.String())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("rangesOf(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// The kernel's elements decode back to what was encoded, and what nft
// writes (an end element at zero before the first range) is kept as a
// stray end element, so that it can be deleted.
func TestRangesFromElements(t *testing.T) {
	rs := rangesOf(pfxs("10.0.0.0/8", "192.168.1.1/32", "255.255.255.0/24"))
	got, err := rangesFromElements(setElements(rs), 4)
	if err != nil || !slices.Equal(got, rs) {
		t.Errorf("round trip: %v, %v; want %v", got, err, rs)
	}
	nft := append([]gnft.SetElement{{Key: []byte{0, 0, 0, 0}, IntervalEnd: true}}, setElements(rs)...)
	slices.Reverse(nft) // the kernel lists them backwards
	got, err = rangesFromElements(nft, 4)
	if err != nil || len(got) != 4 || got[0].String() != "end-only 0.0.0.0" || !slices.Equal(got[1:], rs) {
		t.Errorf("nft's elements: %v, %v", got, err)
	}
	if _, err := rangesFromElements([]gnft.SetElement{{Key: []byte{1, 2, 3}}}, 4); err == nil {
		t.Error("a 3-byte key in an ipv4_addr set was accepted")
	}
}

func TestElementDiff(t *testing.T) {
	have := rangesOf(pfxs("10.0.0.1/32", "10.0.0.3/32", "10.0.0.5/32"))
	want := rangesOf(pfxs("10.0.0.3/32", "10.0.0.5/32", "10.0.0.9/32"))
	add, del := elementDiff(have, want)
	if got := describeDelta(add, del); got != "+10.0.0.9 -10.0.0.1" {
		t.Errorf("delta %q", got)
	}
	var many []netip.Prefix
	for i := range 20 {
		many = append(many, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, 0, byte(2 * i)}), 32))
	}
	add, del = elementDiff(have, rangesOf(many))
	if got := describeDelta(add, del); got != "+20 -3" {
		t.Errorf("delta %q", got)
	}
	if got := describeDelta(elementDiff(have, have)); got != "" {
		t.Errorf("no difference: %q", got)
	}
}

// FuzzRangesFromElements: set elements come from the kernel. Decoding never
// panics, its ranges are in order, and encoding them again gives elements
// that decode to the same ranges (so that a delete names what is there).
func FuzzRangesFromElements(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 10, 0, 0, 0, 0, 11, 0, 0, 0, 1})
	f.Add([]byte{10, 0, 0, 0, 0, 10, 0, 0, 0, 0, 255, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) { roundTripElements(t, b, 4) })
}

// FuzzRangesFromIPv6Elements is FuzzRangesFromElements for the IPv6 sets
// (allow_v6, egress_*_v6): 16-byte keys.
func FuzzRangesFromIPv6Elements(f *testing.F) {
	v6 := func(last byte, end byte) []byte {
		k := netip.MustParseAddr("2001:db8::").As16()
		k[15] = last
		return append(k[:], end)
	}
	f.Add(append(v6(0, 1), v6(1, 0)...))
	f.Add(append(append(v6(0, 0), v6(255, 1)...), v6(16, 0)...))
	f.Fuzz(func(t *testing.T, b []byte) { roundTripElements(t, b, 16) })
}

// roundTripElements decodes b as elements of keyLen-byte keys, each
// followed by a byte whose low bit marks an interval's end, and checks
// the decoding's order and round trip.
func roundTripElements(t *testing.T, b []byte, keyLen int) {
	var elems []gnft.SetElement
	for len(b) >= keyLen+1 {
		elems = append(elems, gnft.SetElement{Key: b[:keyLen], IntervalEnd: b[keyLen]&1 == 1})
		b = b[keyLen+1:]
	}
	rs, err := rangesFromElements(elems, keyLen)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(rs); i++ {
		if key(rs[i-1]).Compare(key(rs[i])) > 0 {
			t.Fatalf("ranges out of order: %v", rs)
		}
	}
	again, err := rangesFromElements(setElements(rs), keyLen)
	if err != nil || !slices.Equal(again, rs) {
		t.Fatalf("elements %v decode to %v, which encode and decode to %v (%v)", elems, rs, again, err)
	}
	for _, r := range rs {
		_ = r.String()
	}
}

// key is where a range sits: its first address, or its end for a stray
// end element.
func key(r Range) netip.Addr {
	if r.First.IsValid() {
		return r.First
	}
	return r.End
}

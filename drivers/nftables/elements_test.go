package nftables

import (
	"fmt"
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
	got, err := decoded(setElements(rs), 4)
	if err != nil || !slices.Equal(got, rs) {
		t.Errorf("round trip: %v, %v; want %v", got, err, rs)
	}
	nft := append([]gnft.SetElement{{Key: []byte{0, 0, 0, 0}, IntervalEnd: true}}, setElements(rs)...)
	slices.Reverse(nft) // the kernel lists them backwards
	got, err = decoded(nft, 4)
	if err != nil || len(got) != 4 || got[0].String() != "end-only 0.0.0.0" || !slices.Equal(got[1:], rs) {
		t.Errorf("nft's elements: %v, %v", got, err)
	}
}

// decoded decodes elements as the kernel lists them (keys of keyLen
// bytes, in any order) into ranges, through the message the kernel sends
// them in.
func decoded(elems []gnft.SetElement, keyLen int) ([]Range, error) {
	list, err := decodeElements(nil, elementsMessage(elems), keyLen)
	if err != nil {
		return nil, err
	}
	return rangesFromElements(list), nil
}

// elementsMessage is the body of an NFT_MSG_NEWSETELEM message holding
// elems, as google/nftables encodes it: the kernel lists elements in
// messages of the same shape.
func elementsMessage(elems []gnft.SetElement) []byte {
	t, err := newTx()
	if err != nil {
		panic(err)
	}
	gs := &gnft.Set{Table: braidTable(), Name: "s", ID: 1, Interval: true, KeyType: gnft.TypeIPAddr}
	if err := t.emit(0, func(c *gnft.Conn) error { return c.SetAddElements(gs, elems) }); err != nil {
		panic(err)
	}
	if len(t.msgs) != 1 {
		panic(fmt.Sprintf("%d messages", len(t.msgs)))
	}
	return t.msgs[0].Data
}

func TestDecodeElements(t *testing.T) {
	got, err := decodeElements(nil, elementsMessage([]gnft.SetElement{
		{Key: []byte{10, 0, 0, 1}},
		{Key: []byte{10, 0, 0, 2}, IntervalEnd: true},
	}), 4)
	want := []element{{netip.MustParseAddr("10.0.0.1"), false}, {netip.MustParseAddr("10.0.0.2"), true}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("decoded %v, %v; want %v", got, err, want)
	}
	if _, err := decodeElements(nil, elementsMessage([]gnft.SetElement{{Key: []byte{1, 2, 3}}}), 4); err == nil {
		t.Error("a 3-byte key in an ipv4_addr set was accepted")
	}
	if _, err := decodeElements(nil, []byte{1, 0, 0, 0, 8, 0, 3, 0}, 4); err == nil {
		t.Error("a truncated attribute was accepted")
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
	rs, err := decoded(elems, keyLen)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(rs); i++ {
		if key(rs[i-1]).Compare(key(rs[i])) > 0 {
			t.Fatalf("ranges out of order: %v", rs)
		}
	}
	again, err := decoded(setElements(rs), keyLen)
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

// elementsMsg encodes exactly what google/nftables' SetAddElements and
// SetDeleteElements do, for elements of both families, with and without
// the interval-end flag.
func TestElementsMsgAsTheLibrary(t *testing.T) {
	v4 := setElements(rangesOf(pfxs("10.0.0.0/8", "192.168.1.1/32", "255.255.255.0/24")))
	v6 := setElements(rangesOf(pfxs("2001:db8::/32", "fd00::1/128", "ffff::/16")))
	for _, tt := range []struct {
		name  string
		elems []gnft.SetElement
		kt    gnft.SetDatatype
	}{{"v4", v4, gnft.TypeIPAddr}, {"v6", v6, gnft.TypeIP6Addr}} {
		for _, add := range []bool{true, false} {
			gs := &gnft.Set{Table: braidTable(), Name: "allow_" + tt.name, ID: 7, Interval: true, KeyType: tt.kt}
			lib, err := newTx()
			if err != nil {
				t.Fatal(err)
			}
			err = lib.emit(0, func(c *gnft.Conn) error {
				if add {
					return c.SetAddElements(gs, tt.elems)
				}
				return c.SetDeleteElements(gs, tt.elems)
			})
			if err != nil || len(lib.msgs) != 1 {
				t.Fatalf("%s add=%v: the library made %d messages: %v", tt.name, add, len(lib.msgs), err)
			}
			got, want := elementsMsg(gs, tt.elems, add), lib.msgs[0]
			if got.Header.Type != want.Header.Type || got.Header.Flags != want.Header.Flags || !slices.Equal(got.Data, want.Data) {
				t.Errorf("%s add=%v:\n got  %v %v %x\n want %v %v %x", tt.name, add, got.Header.Type, got.Header.Flags, got.Data, want.Header.Type, want.Header.Flags, want.Data)
			}
		}
	}
}

package nftables

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	gnft "github.com/google/nftables"
)

// Range is one element of an interval set: the addresses from First up to,
// but not including, End, stored in the kernel as a start element and an
// end element. An invalid End means no end element: the range runs to the
// top of the address space (or, in a set braid did not write, to the next
// start). An invalid First marks an end element with no start before it,
// which matches nothing: only an observed set has one (nft writes one at
// address zero), and braid removes it.
type Range struct {
	// First is the range's first address; End the first address after it.
	First, End netip.Addr
}

// String writes the range as a prefix where it is one, else as FIRST-LAST.
func (r Range) String() string {
	if !r.First.IsValid() {
		return "end-only " + r.End.String()
	}
	last := r.last()
	if p, ok := prefixOf(r.First, last); ok {
		if p.IsSingleIP() {
			return p.Addr().String()
		}
		return p.String()
	}
	return r.First.String() + "-" + last.String()
}

// last is the last address of the range.
func (r Range) last() netip.Addr {
	if !r.End.IsValid() {
		return maxAddr(r.First.Is6())
	}
	return r.End.Prev()
}

// maxAddr is the highest address of a family.
func maxAddr(v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte{0: 0xff, 1: 0xff, 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 6: 0xff, 7: 0xff,
			8: 0xff, 9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff})
	}
	return netip.AddrFrom4([4]byte{0xff, 0xff, 0xff, 0xff})
}

// prefixOf returns the prefix whose addresses are exactly first..last, if
// there is one.
func prefixOf(first, last netip.Addr) (netip.Prefix, bool) {
	for bits := 0; bits <= first.BitLen(); bits++ {
		p := netip.PrefixFrom(first, bits)
		if p.Masked().Addr() != first {
			continue
		}
		if lastOf(p) == last {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// lastOf is the last address of a prefix.
func lastOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// rangesOf turns prefixes of one family into the set's elements: sorted,
// with overlapping and adjacent prefixes merged (the kernel refuses
// overlapping intervals).
func rangesOf(ps []netip.Prefix) []Range {
	type span struct{ first, last netip.Addr }
	spans := make([]span, 0, len(ps))
	for _, p := range ps {
		p = p.Masked()
		spans = append(spans, span{p.Addr(), lastOf(p)})
	}
	slices.SortFunc(spans, func(a, b span) int { return a.first.Compare(b.first) })
	var out []Range
	for i := 0; i < len(spans); {
		first, last := spans[i].first, spans[i].last
		j := i + 1
		for ; j < len(spans); j++ {
			next := last.Next()
			if !next.IsValid() || spans[j].first.Compare(next) > 0 {
				break
			}
			if spans[j].last.Compare(last) > 0 {
				last = spans[j].last
			}
		}
		out = append(out, Range{First: first, End: last.Next()})
		i = j
	}
	return out
}

// setElements encodes ranges as the kernel's interval elements: a start
// element, and an end element (flagged) at the first address after the
// range unless it runs to the top.
func setElements(rs []Range) []gnft.SetElement {
	out := make([]gnft.SetElement, 0, 2*len(rs))
	for _, r := range rs {
		if r.First.IsValid() {
			out = append(out, gnft.SetElement{Key: r.First.AsSlice()})
		}
		if r.End.IsValid() {
			out = append(out, gnft.SetElement{Key: r.End.AsSlice(), IntervalEnd: true})
		}
	}
	return out
}

// element is one element of an interval set of addresses as the kernel
// lists it: a start, or (end) the first address after a range.
type element struct {
	key netip.Addr
	end bool
}

// rangesFromElements turns the elements the kernel lists for an interval
// set of addresses back into ranges, exactly as stored: a start runs to
// the next end element, or to the next start, or to the top; an end
// element with no start before it is kept as such, so that it can be
// deleted. It sorts list.
func rangesFromElements(list []element) []Range {
	// By address; at one address an end (closing the range before) comes
	// before a start (opening the next).
	slices.SortFunc(list, func(a, b element) int {
		if c := a.key.Compare(b.key); c != 0 {
			return c
		}
		switch {
		case a.end == b.end:
			return 0
		case a.end:
			return -1
		}
		return 1
	})
	var out []Range
	var open netip.Addr
	for _, e := range list {
		switch {
		case !e.end && open.IsValid():
			// A start with no end before the next start: as the kernel
			// matches it, it runs up to the next start.
			out = append(out, Range{First: open})
			open = e.key
		case !e.end:
			open = e.key
		case open.IsValid():
			out = append(out, Range{First: open, End: e.key})
			open = netip.Addr{}
		default:
			out = append(out, Range{End: e.key})
		}
	}
	if open.IsValid() {
		out = append(out, Range{First: open})
	}
	return out
}

// elementDiff returns the ranges of want not in have (to add) and of have
// not in want (to delete), each in order.
func elementDiff(have, want []Range) (add, del []Range) {
	in := func(rs []Range) map[Range]struct{} {
		m := make(map[Range]struct{}, len(rs))
		for _, r := range rs {
			m[r] = struct{}{}
		}
		return m
	}
	h, w := in(have), in(want)
	for _, r := range want {
		if _, ok := h[r]; !ok {
			add = append(add, r)
		}
	}
	for _, r := range have {
		if _, ok := w[r]; !ok {
			del = append(del, r)
		}
	}
	return add, del
}

// describeDelta writes what an element difference adds and deletes: the
// elements themselves when there are a few, counts otherwise.
func describeDelta(add, del []Range) string {
	if len(add)+len(del) == 0 {
		return ""
	}
	const listed = 8
	if len(add)+len(del) > listed {
		return "+" + strconv.Itoa(len(add)) + " -" + strconv.Itoa(len(del))
	}
	parts := make([]string, 0, len(add)+len(del))
	for _, r := range add {
		parts = append(parts, "+"+r.String())
	}
	for _, r := range del {
		parts = append(parts, "-"+r.String())
	}
	return strings.Join(parts, " ")
}

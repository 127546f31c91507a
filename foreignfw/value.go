package foreignfw

import (
	"bytes"
	"slices"
)

// Tri is a three-valued truth: whether a match holds for every packet a
// flow stands for, for none of them, or for some (or for reasons braid
// does not model).
type Tri int8

// Truth values.
const (
	False Tri = iota
	True
	Maybe
)

// Not inverts t; Maybe stays Maybe.
func (t Tri) Not() Tri {
	switch t {
	case True:
		return False
	case False:
		return True
	}
	return Maybe
}

func (t Tri) String() string {
	return [...]string{"false", "true", "maybe"}[t]
}

// Value is the set of byte strings of one length that a field of a flow's
// packets may hold: a union of closed intervals in the kernel's order
// (memcmp, which is how nftables compares registers). A field braid knows
// exactly is one point; a flow that stands for many packets (any LAN host,
// any client port) holds a range; a field braid does not model is the
// whole range (Top). Every operation over-approximates, so that a Value
// never holds less than the packets could: a match found true or false
// over it is so for each packet, and anything else is Maybe.
type Value struct {
	n      int
	ranges []span
}

// span is one closed interval [lo, hi].
type span struct{ lo, hi []byte }

// Point is the value that is exactly b.
func Point(b []byte) Value {
	c := bytes.Clone(b)
	return Value{n: len(b), ranges: []span{{c, c}}}
}

// Points is the value that is any of bs, all of one length.
func Points(bs ...[]byte) Value {
	if len(bs) == 0 {
		return Value{}
	}
	v := Value{n: len(bs[0])}
	for _, b := range bs {
		c := bytes.Clone(b)
		v.ranges = append(v.ranges, span{c, c})
	}
	return v.norm()
}

// Between is the value of every byte string from lo to hi, inclusive.
func Between(lo, hi []byte) Value {
	if bytes.Compare(lo, hi) > 0 {
		lo, hi = hi, lo
	}
	return Value{n: len(lo), ranges: []span{{bytes.Clone(lo), bytes.Clone(hi)}}}
}

// Top is every byte string of n bytes: a field braid does not model.
func Top(n int) Value {
	return Between(make([]byte, n), bytes.Repeat([]byte{0xff}, n))
}

// Union is the value of a or b, of one length.
func Union(vs ...Value) Value {
	if len(vs) == 0 {
		return Value{}
	}
	out := Value{n: vs[0].n}
	for _, v := range vs {
		out.ranges = append(out.ranges, v.ranges...)
	}
	return out.norm()
}

// Minus is v without the interval [lo, hi].
func (v Value) Minus(lo, hi []byte) Value {
	out := Value{n: v.n}
	for _, s := range v.ranges {
		if bytes.Compare(s.hi, lo) < 0 || bytes.Compare(s.lo, hi) > 0 {
			out.ranges = append(out.ranges, s)
			continue
		}
		if bytes.Compare(s.lo, lo) < 0 {
			if p, ok := dec(lo); ok {
				out.ranges = append(out.ranges, span{s.lo, p})
			}
		}
		if bytes.Compare(s.hi, hi) > 0 {
			if n, ok := inc(hi); ok {
				out.ranges = append(out.ranges, span{n, s.hi})
			}
		}
	}
	return out
}

// Len is the length of the byte strings.
func (v Value) Len() int { return v.n }

// Empty reports whether v holds nothing.
func (v Value) Empty() bool { return len(v.ranges) == 0 }

// point returns the one byte string v holds, if it holds one.
func (v Value) point() ([]byte, bool) {
	if len(v.ranges) == 1 && bytes.Equal(v.ranges[0].lo, v.ranges[0].hi) {
		return v.ranges[0].lo, true
	}
	return nil, false
}

// smallPoints lists what v holds when it is a few points.
func (v Value) smallPoints(limit int) ([][]byte, bool) {
	if len(v.ranges) > limit {
		return nil, false
	}
	out := make([][]byte, 0, len(v.ranges))
	for _, s := range v.ranges {
		if !bytes.Equal(s.lo, s.hi) {
			return nil, false
		}
		out = append(out, s.lo)
	}
	return out, true
}

// in reports whether every string of v is in [lo, hi] (True), none is
// (False), or some are (Maybe).
func (v Value) in(lo, hi []byte) Tri {
	if v.Empty() {
		return False
	}
	all, any := true, false
	for _, s := range v.ranges {
		if bytes.Compare(s.lo, lo) < 0 || bytes.Compare(s.hi, hi) > 0 {
			all = false
		}
		if bytes.Compare(s.hi, lo) >= 0 && bytes.Compare(s.lo, hi) <= 0 {
			any = true
		}
	}
	switch {
	case all:
		return True
	case any:
		return Maybe
	}
	return False
}

// cmp compares v with data as the kernel's cmp expression does (memcmp).
func (v Value) cmp(op cmpOp, data []byte) Tri {
	zero, ones := make([]byte, len(data)), bytes.Repeat([]byte{0xff}, len(data))
	switch op {
	case opEq:
		return v.in(data, data)
	case opNeq:
		return v.in(data, data).Not()
	case opLt:
		if p, ok := dec(data); ok {
			return v.in(zero, p)
		}
		return False
	case opLte:
		return v.in(zero, data)
	case opGt:
		if n, ok := inc(data); ok {
			return v.in(n, ones)
		}
		return False
	case opGte:
		return v.in(data, ones)
	}
	return Maybe
}

// slice is the value of bytes [off, off+n) of v's strings.
func (v Value) slice(off, n int) Value {
	if off == 0 && n == v.n {
		return v
	}
	if ps, ok := v.smallPoints(64); ok {
		out := make([][]byte, len(ps))
		for i, p := range ps {
			out[i] = p[off : off+n]
		}
		return Points(out...)
	}
	if off == 0 {
		// The prefixes of the strings of [lo, hi] are exactly the
		// strings from lo's prefix to hi's.
		out := Value{n: n}
		for _, s := range v.ranges {
			out.ranges = append(out.ranges, span{s.lo[:n], s.hi[:n]})
		}
		return out.norm()
	}
	return Top(n)
}

// and is v with each string ANDed with mask and XORed with xor.
func (v Value) and(mask, xor []byte) Value {
	if len(mask) != v.n || len(xor) != v.n {
		return Top(len(mask))
	}
	if ps, ok := v.smallPoints(256); ok {
		out := make([][]byte, len(ps))
		for i, p := range ps {
			b := make([]byte, v.n)
			for j := range b {
				b[j] = p[j]&mask[j] ^ xor[j]
			}
			out[i] = b
		}
		return Points(out...)
	}
	if !isPrefixMask(mask) || !allZero(xor) {
		return Top(v.n)
	}
	// A prefix mask keeps the order: [lo, hi] maps into [lo&m, hi&m].
	out := Value{n: v.n}
	for _, s := range v.ranges {
		lo, hi := make([]byte, v.n), make([]byte, v.n)
		for j := range lo {
			lo[j], hi[j] = s.lo[j]&mask[j], s.hi[j]&mask[j]
		}
		out.ranges = append(out.ranges, span{lo, hi})
	}
	return out.norm()
}

// norm sorts and merges the intervals.
func (v Value) norm() Value {
	slices.SortFunc(v.ranges, func(a, b span) int { return bytes.Compare(a.lo, b.lo) })
	out := v.ranges[:0:0]
	for _, s := range v.ranges {
		if k := len(out) - 1; k >= 0 {
			last := &out[k]
			next, ok := inc(last.hi)
			if bytes.Compare(s.lo, last.hi) <= 0 || (ok && bytes.Equal(s.lo, next)) {
				if bytes.Compare(s.hi, last.hi) > 0 {
					last.hi = s.hi
				}
				continue
			}
		}
		out = append(out, s)
	}
	return Value{n: v.n, ranges: out}
}

// inc returns b+1, false when b is all ones.
func inc(b []byte) ([]byte, bool) {
	c := bytes.Clone(b)
	for i := len(c) - 1; i >= 0; i-- {
		c[i]++
		if c[i] != 0 {
			return c, true
		}
	}
	return nil, false
}

// dec returns b-1, false when b is all zeroes.
func dec(b []byte) ([]byte, bool) {
	c := bytes.Clone(b)
	for i := len(c) - 1; i >= 0; i-- {
		c[i]--
		if c[i] != 0xff {
			return c, true
		}
	}
	return nil, false
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// isPrefixMask reports whether mask is ones then zeroes.
func isPrefixMask(mask []byte) bool {
	zero := false
	for _, m := range mask {
		for bit := 7; bit >= 0; bit-- {
			on := m>>bit&1 == 1
			if on && zero {
				return false
			}
			if !on {
				zero = true
			}
		}
	}
	return true
}

// cmpOp mirrors the kernel's comparison operators.
type cmpOp int

const (
	opEq cmpOp = iota
	opNeq
	opLt
	opLte
	opGt
	opGte
)

package foreignfw

import "slices"

// fields is a byte-addressed store of values: the registers of a rule's
// evaluation, or a packet header. Each field holds a value at an offset;
// bytes no field covers are unknown.
type fields []field

type field struct {
	off int
	v   Value
}

// write stores v at off, replacing what overlapped it. Like the kernel,
// it zeroes the rest of the last 32-bit word it writes into.
func (fs fields) write(off int, v Value) fields {
	end := off + v.Len()
	pad := (4 - end%4) % 4
	out := fs[:0:0]
	for _, f := range fs {
		if f.off+f.v.Len() <= off || f.off >= end+pad {
			out = append(out, f)
		}
	}
	out = append(out, field{off, v})
	if pad > 0 {
		out = append(out, field{end, Point(make([]byte, pad))})
	}
	slices.SortFunc(out, func(a, b field) int { return a.off - b.off })
	return out
}

// read returns the values of bytes [off, off+n), one segment per field it
// crosses (a part of a field is the field's value sliced); bytes no field
// covers are Top.
func (fs fields) read(off, n int) []Value {
	var segs []Value
	at, end := off, off+n
	for _, f := range fs {
		fend := f.off + f.v.Len()
		if fend <= at || f.off >= end {
			continue
		}
		if f.off > at {
			segs = append(segs, Top(f.off-at))
			at = f.off
		}
		stop := min(fend, end)
		segs = append(segs, f.v.slice(at-f.off, stop-at))
		at = stop
	}
	if at < end {
		segs = append(segs, Top(end-at))
	}
	return segs
}

// join makes one value of segments: their concatenation when each is one
// point, the one segment when there is one, and else Top (sound: it holds
// every concatenation).
func join(segs []Value) Value {
	if len(segs) == 1 {
		return segs[0]
	}
	var b []byte
	n := 0
	for _, s := range segs {
		n += s.Len()
		p, ok := s.point()
		if !ok {
			return Top(n)
		}
		b = append(b, p...)
	}
	if b == nil {
		b = []byte{}
	}
	return Point(b)
}

// regOffset is where a data register starts in the register file: the
// four 16-byte registers NFT_REG_1..4 and the sixteen 32-bit registers
// NFT_REG32_00..15 overlay the same 64 bytes.
func regOffset(r uint32) (int, bool) {
	switch {
	case r >= 1 && r <= 4:
		return int(r-1) * 16, true
	case r >= 8 && r <= 23:
		return int(r-8) * 4, true
	}
	return 0, false
}

// regFileLen is the size of the data registers.
const regFileLen = 64

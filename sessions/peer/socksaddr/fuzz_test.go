package socksaddr

import (
	"bytes"
	"testing"
)

// FuzzParse checks that Parse never panics, never claims more octets than
// it was given, agrees with Read, and that what it decodes encodes back to
// the octets it took.
func FuzzParse(f *testing.F) {
	f.Add([]byte{1, 192, 0, 2, 7, 0x01, 0xbb})
	f.Add([]byte{3, 3, 'a', '.', 'b', 0, 80})
	f.Add(append([]byte{4}, make([]byte, 18)...))
	f.Add([]byte{3, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, n, err := Parse(b)
		ra, rerr := Read(bytes.NewReader(b))
		if err != nil {
			if n != 0 {
				t.Fatalf("Parse failed (%v) but took %d octets", err, n)
			}
			if rerr == nil {
				t.Fatalf("Parse(%x) failed (%v), Read decoded %+v", b, err, ra)
			}
			return
		}
		if n > len(b) {
			t.Fatalf("Parse took %d of %d octets", n, len(b))
		}
		if rerr != nil || ra != a {
			t.Fatalf("Parse(%x) = %+v, Read = %+v, %v", b, a, ra, rerr)
		}
		if enc := Append(nil, a); !bytes.Equal(enc, b[:n]) {
			t.Fatalf("Append(Parse(%x)) = %x", b[:n], enc)
		}
	})
}

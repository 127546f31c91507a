package dnsstream

import (
	"bytes"
	"testing"
)

// FuzzRead checks that Read never panics, returns no message shorter
// than a header, and that a message it returns, framed again, is exactly
// the octets it took.
func FuzzRead(f *testing.F) {
	f.Add(append([]byte{0, 12}, header...))
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, 1, 2, 3})
	f.Add(append(append([]byte{0, 12}, header...), 0, 12))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		msg, err := Read(r)
		if err != nil {
			return
		}
		if len(msg) < HeaderLen {
			t.Fatalf("Read returned %d octets", len(msg))
		}
		took := len(b) - r.Len()
		framed, err := Append(nil, msg)
		if err != nil || !bytes.Equal(framed, b[:took]) {
			t.Fatalf("Append(Read(%x)) = %x, %v", b[:took], framed, err)
		}
	})
}

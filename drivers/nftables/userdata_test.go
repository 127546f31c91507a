package nftables

import (
	"bytes"
	"errors"
	"testing"
)

func TestDecodeID(t *testing.T) {
	for _, tt := range []struct {
		b    []byte
		want string
		err  error
	}{
		{encodeID("lan"), "lan", nil},
		{encodeID("open-tcp-22-isp1-from-2001:db8::/32"), "open-tcp-22-isp1-from-2001:db8::/32", nil},
		// nft's own comment, after another TLV.
		{append([]byte{7, 2, 'x', 'y'}, encodeID("drop-isp1")...), "drop-isp1", nil},
		{nil, "", errNoComment},
		{[]byte{7, 1, 0}, "", errNoComment},
		{[]byte{0}, "", errBadUData},
		{[]byte{0, 9, 'a', 0}, "", errBadUData},
		{[]byte{0, 3, 'a', 'b', 'c'}, "", errBadComment},
		{[]byte{0, 0}, "", errBadComment},
		{[]byte{0, 4, 'a', ' ', 'b', 0}, "", errBadComment},
		{[]byte{0, 4, 'a', '\n', 'b', 0}, "", errBadComment},
		{[]byte{0, 1, 0}, "", errBadComment},
	} {
		got, err := decodeID(tt.b)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("decodeID(%q) = %q, %v; want %q, %v", tt.b, got, err, tt.want, tt.err)
		}
	}
}

// FuzzDecodeID: user data comes from the kernel, where anyone with
// CAP_NET_ADMIN may have written anything. decodeID never panics, and what
// it accepts is a valid ID that encodes back to a comment it reads again.
func FuzzDecodeID(f *testing.F) {
	f.Add(encodeID("lan"))
	f.Add([]byte{7, 2, 'x', 'y', 0, 4, 'a', 'b', 'c', 0})
	f.Add([]byte{0, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := decodeID(b)
		if err != nil {
			return
		}
		if !validID(id) {
			t.Fatalf("decodeID(%q) accepted the invalid ID %q", b, id)
		}
		enc := encodeID(id)
		if again, err := decodeID(enc); again != id || err != nil {
			t.Fatalf("ID %q encodes to %q, which decodes to %q, %v", id, enc, again, err)
		}
		if !bytes.Contains(b, enc[2:]) {
			t.Fatalf("ID %q is not in the user data %q", id, b)
		}
	})
}

package proxy

import (
	"bytes"
	"testing"

	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"
)

// FuzzOpenReply feeds openReply datagrams from the peer: sealed with the
// key (the fuzzer's bytes as the plaintext, so that the address decoder
// behind the AEAD is reached) and as they come (mostly forgeries). It
// never panics; what it opens has a valid source, is the plaintext after
// the source's encoding, and opened only with the key.
func FuzzOpenReply(f *testing.F) {
	key := testKey(f, "chacha20-ietf-poly1305")
	f.Add([]byte{1, 198, 51, 100, 80, 0, 53, 'h', 'i'}, false)
	f.Add(append([]byte{4}, make([]byte, 18)...), false)
	f.Add([]byte{3, 1, 'a', 0, 53}, true)
	f.Add([]byte{1, 0, 0}, true)
	f.Fuzz(func(t *testing.T, b []byte, raw bool) {
		pkt := bytes.Clone(b)
		if !raw {
			var err error
			if pkt, err = shadowsocks.Pack(make([]byte, len(b)+64), b, key); err != nil {
				t.Fatal(err)
			}
		}
		src, payload, err := openReply(pkt, key)
		if err != nil {
			return
		}
		if raw {
			// A forgery that authenticates: possible, but not found by a
			// fuzzer in any reasonable time; worth a look if it happens.
			t.Fatalf("a datagram not sealed with the key opened: %x", b)
		}
		if !src.IsValid() || src.Addr().Is4In6() {
			t.Fatalf("openReply(%x): source %s", b, src)
		}
		if !bytes.HasSuffix(b, payload) || len(payload) > len(b)-7 {
			t.Fatalf("openReply(%x): payload %x", b, payload)
		}
		// The source, encoded again, is what the payload followed
		// (mapped IPv4 aside).
		if enc := targetAddr(nil, src); b[0] != 4 && !bytes.Equal(enc, b[:len(b)-len(payload)]) {
			t.Fatalf("openReply(%x): source %s encodes as %x", b, src, enc)
		}
	})
}

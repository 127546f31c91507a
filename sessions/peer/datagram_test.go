package peer

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"

	"github.com/braid-router/braid/sessions/peer/socksaddr"
)

func testKey(t testing.TB, cipher string) *shadowsocks.EncryptionKey {
	t.Helper()
	key, err := shadowsocks.NewEncryptionKey(cipher, "the right key")
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// A reply sealed by the relay opens, with its source address, as a
// client's datagram does: the same format both ways.
func TestSealDatagramOpens(t *testing.T) {
	for _, cipher := range []string{"chacha20-ietf-poly1305", "aes-256-gcm", "aes-128-gcm"} {
		key := testKey(t, cipher)
		for _, src := range []string{"192.0.2.7:53", "[::ffff:192.0.2.7]:53", "[2001:db8::7]:443"} {
			from := netip.MustParseAddrPort(src)
			for _, payload := range [][]byte{nil, []byte("an answer"), bytes.Repeat([]byte{0xa5}, replyBuffer-replyHead(key)-key.TagSize())} {
				buf := make([]byte, replyBuffer)
				copy(buf[replyHead(key):], payload)
				sealed, err := sealDatagram(buf, len(payload), from, key, shadowsocks.RandomSaltGenerator)
				if err != nil {
					t.Fatalf("%s from %s: %v", cipher, src, err)
				}
				_, dst, got, reason := openDatagram(key, sealed)
				if reason != "" {
					t.Fatalf("%s from %s: the sealed reply is rejected: %s", cipher, src, reason)
				}
				want := socksaddr.Addr{IP: from.Addr().Unmap(), Port: from.Port()}
				if dst != want || !bytes.Equal(got, payload) {
					t.Fatalf("%s from %s: opened from %v with %d octets, want from %v with %d", cipher, src, dst, len(got), want, len(payload))
				}
			}
		}
	}
}

func TestSealDatagramShortBuffer(t *testing.T) {
	key := testKey(t, "aes-128-gcm")
	buf := make([]byte, replyHead(key)+10)
	if _, err := sealDatagram(buf, 10, netip.MustParseAddrPort("192.0.2.1:1"), key, shadowsocks.RandomSaltGenerator); err == nil {
		t.Fatal("sealed a reply with no room for its tag")
	}
}

// FuzzOpenDatagram: whatever arrives, openDatagram neither panics nor
// takes bytes for authentic that were not sealed with the key; what is
// sealed with the key opens to its address and payload when it starts
// with a whole address.
func FuzzOpenDatagram(f *testing.F) {
	key := testKey(f, "chacha20-ietf-poly1305")
	f.Add([]byte{})
	f.Add(make([]byte, 32+16))
	f.Add(append(socksaddr.Append(nil, socksaddr.Addr{IP: netip.MustParseAddr("192.0.2.1"), Port: 53}), "query"...))
	f.Add(append(socksaddr.Append(nil, socksaddr.Addr{Domain: "example.com", Port: 443}), "x"...))
	f.Add([]byte{socksaddr.TypeDomain, 0, 0, 80})
	f.Fuzz(func(t *testing.T, b []byte) {
		// As it arrived: not sealed with the key, so rejected.
		if _, _, _, reason := openDatagram(key, bytes.Clone(b)); reason == "" {
			t.Fatalf("%x taken for authentic", b)
		}
		// As the plaintext of a datagram sealed with the key.
		pkt, err := shadowsocks.Pack(make([]byte, key.SaltSize()+len(b)+key.TagSize()), b, key)
		if err != nil {
			t.Fatal(err)
		}
		salt := bytes.Clone(pkt[:key.SaltSize()])
		gotSalt, dst, payload, reason := openDatagram(key, pkt)
		want, n, err := socksaddr.Parse(b)
		if err != nil {
			if reason != RejectAddress {
				t.Fatalf("%x: rejected as %q, want %q (%v)", b, reason, RejectAddress, err)
			}
			return
		}
		if reason != "" || dst != want || !bytes.Equal(payload, b[n:]) || !bytes.Equal(gotSalt, salt) {
			t.Fatalf("%x: opened to %v %x (salt %x, %q), want %v %x (salt %x)", b, dst, payload, gotSalt, reason, want, b[n:], salt)
		}
	})
}

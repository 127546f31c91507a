package proxy

import (
	"bytes"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"
	"golang.org/x/sys/unix"
)

func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }

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

// FuzzOrigDst feeds origDst control messages: a well-formed message
// around the fuzzer's bytes, of either family, and the bytes as they
// come. It never panics, and what it decodes from a sockaddr is that
// sockaddr's address and port.
func FuzzOrigDst(f *testing.F) {
	f.Add(sockaddr4(netip.MustParseAddrPort("198.51.100.80:443")), false)
	f.Add(sockaddr6(netip.MustParseAddrPort("[2001:db8::1]:53")), true)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		origDst(b)
		level, typ := unix.SOL_IP, unix.IP_ORIGDSTADDR
		if v6 {
			level, typ = unix.SOL_IPV6, unix.IPV6_ORIGDSTADDR
		}
		got, err := origDst(cmsg(level, typ, b))
		if err != nil {
			return
		}
		var want netip.AddrPort
		if v6 {
			want = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])).Unmap(), uint16(b[2])<<8|uint16(b[3]))
		} else {
			want = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), uint16(b[2])<<8|uint16(b[3]))
		}
		if got != want {
			t.Fatalf("origDst(%x) = %s, want %s", b, got, want)
		}
	})
}

package proxy

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"
)

func testKey(t testing.TB, cipher string) *shadowsocks.EncryptionKey {
	t.Helper()
	key, err := shadowsocks.NewEncryptionKey(cipher, "not-a-secret")
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// TestSealOpen: what seal makes, outline-sdk's Unpack opens to the
// target address and the payload (the layout shadowsocks-libev reads);
// what outline-sdk's Pack makes of a source address and a payload,
// openReply opens; a datagram sealed with another key, cut short or
// naming its source does not open.
func TestSealOpen(t *testing.T) {
	for _, cipher := range []string{"chacha20-ietf-poly1305", "aes-256-gcm", "aes-128-gcm"} {
		key := testKey(t, cipher)
		for _, dst := range []string{"198.51.100.80:53", "[2001:db8::80]:443", "[::ffff:198.51.100.80]:7"} {
			dst := netip.MustParseAddrPort(dst)
			buf := newDatagramBuf()
			payload := []byte("a datagram")
			n := copy(buf[udpHead:], payload)
			pkt, err := seal(buf, n, dst, key)
			if err != nil {
				t.Fatalf("%s: seal: %v", cipher, err)
			}
			plain, err := shadowsocks.Unpack(nil, bytes.Clone(pkt), key)
			if want := append(targetAddr(nil, dst), payload...); err != nil || !bytes.Equal(plain, want) {
				t.Errorf("%s %s: Unpack(seal) = %x, %v; want %x", cipher, dst, plain, err, want)
			}

			// The peer's answer: the source's address, then the payload.
			reply, err := shadowsocks.Pack(make([]byte, 2048), append(targetAddr(nil, dst), "an answer"...), key)
			if err != nil {
				t.Fatal(err)
			}
			src, got, err := openReply(bytes.Clone(reply), key)
			if want := netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port()); err != nil || src != want || string(got) != "an answer" {
				t.Errorf("%s: openReply = %s %q %v, want %s \"an answer\"", cipher, src, got, err, want)
			}
			if _, _, err := openReply(bytes.Clone(reply), testKey(t, "aes-128-gcm")); err == nil && cipher != "aes-128-gcm" {
				t.Errorf("%s: a reply opened with another cipher's key", cipher)
			}
			if _, _, err := openReply(bytes.Clone(reply[:len(reply)-1]), key); err == nil {
				t.Errorf("%s: a reply cut short opened", cipher)
			}
		}
		named, _ := shadowsocks.Pack(make([]byte, 2048), []byte{3, 1, 'a', 0, 53, 'x'}, key)
		if _, _, err := openReply(named, key); !errors.Is(err, errNameSource) {
			t.Errorf("%s: a reply from a name: %v", cipher, err)
		}
	}
}

// TestUDPParamsResolve: an address is taken as it is (IPv4-mapped
// unmapped), a name is looked up (localhost, from /etc/hosts), anything
// else is an error.
func TestUDPParamsResolve(t *testing.T) {
	for _, c := range []struct{ peer, want string }{
		{"203.0.113.7:65101", "203.0.113.7:65101"},
		{"[::ffff:203.0.113.7]:1", "203.0.113.7:1"},
		{"[2001:db8::7]:8388", "[2001:db8::7]:8388"},
		{"203.0.113.7", ""},
		{"203.0.113.7:65536", ""},
	} {
		got, err := (&udpParams{peer: c.peer}).resolve()
		if (c.want == "") != (err != nil) || (err == nil && got.String() != c.want) {
			t.Errorf("resolve(%s) = %s, %v; want %q", c.peer, got, err, c.want)
		}
	}
	got, err := (&udpParams{peer: "localhost:8388"}).resolve()
	if err != nil || !got.Addr().IsLoopback() || got.Port() != 8388 {
		t.Errorf("resolve(localhost:8388) = %s, %v", got, err)
	}
}

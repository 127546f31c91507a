package proxy

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"

	"github.com/braid-router/braid/sessions/peer/socksaddr"
)

// The shadowsocks UDP relay's datagram (SIP004, what shadowsocks-libev's
// -u speaks): [salt][AEAD(target address, payload)][tag], each datagram
// sealed on its own with a fresh salt. From the box, the target address
// is where the LAN client sent the payload; from the peer, where the
// reply came from.

// Room in a datagram's buffer around the LAN payload, so that it is
// sealed where it was read: the largest salt (aes-256-gcm's and
// chacha20's, 32 octets) and target address (IPv6: 19 octets; braid sends
// no name) before it, the tag (16 octets for every cipher) after it.
const (
	maxSalt    = 32
	maxTarget  = 1 + 16 + 2
	udpHead    = maxSalt + maxTarget
	udpTail    = 16
	maxPayload = 65535
)

// newDatagramBuf returns a buffer for seal: the payload goes at
// buf[udpHead:len(buf)-udpTail].
func newDatagramBuf() []byte { return make([]byte, udpHead+maxPayload+udpTail) }

// seal encrypts the n octets of payload at buf[udpHead:], which dst was
// the destination of, in place: it writes dst's target address before
// them and returns the sealed datagram, a part of buf. buf is from
// newDatagramBuf.
func seal(buf []byte, n int, dst netip.AddrPort, key *shadowsocks.EncryptionKey) ([]byte, error) {
	var hdr [maxTarget]byte
	addr := targetAddr(hdr[:0], dst)
	start := udpHead - len(addr)
	copy(buf[start:], addr)
	s := key.SaltSize()
	if s > maxSalt || key.TagSize() > udpTail {
		return nil, fmt.Errorf("shadowsocks udp: salt of %d or tag of %d octets", s, key.TagSize())
	}
	// Pack writes the salt at buf[start-s:start] and seals the plaintext
	// where it is, right after.
	return shadowsocks.Pack(buf[start-s:], buf[start:udpHead+n], key)
}

// errNameSource: a reply names its source by a domain name, which no
// LAN client's datagram was sent to.
var errNameSource = errors.New("shadowsocks udp: the reply's source is a name")

// openReply decrypts a datagram from the peer in place and returns where
// the reply came from (the address the peer received it from; an IPv4
// address written as IPv4-mapped IPv6 is IPv4) and its payload, a part of
// pkt. A datagram that does not authenticate with key, or whose address
// does not decode or is a name, is an error.
func openReply(pkt []byte, key *shadowsocks.EncryptionKey) (netip.AddrPort, []byte, error) {
	plain, err := shadowsocks.Unpack(nil, pkt, key)
	if err != nil {
		return netip.AddrPort{}, nil, fmt.Errorf("shadowsocks udp: %w", err)
	}
	a, n, err := socksaddr.Parse(plain)
	if err != nil {
		return netip.AddrPort{}, nil, fmt.Errorf("shadowsocks udp: the reply's source: %w", err)
	}
	if a.Domain != "" {
		return netip.AddrPort{}, nil, errNameSource
	}
	return netip.AddrPortFrom(a.IP.Unmap(), a.Port), plain[n:], nil
}

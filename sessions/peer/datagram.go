package peer

import (
	"errors"
	"io"
	"net/netip"

	"github.com/Jigsaw-Code/outline-sdk/transport/shadowsocks"

	"github.com/braid-router/braid/sessions/peer/socksaddr"
)

// maxAddrLen is the longest target address a reply carries: an IPv6
// address and a port.
const maxAddrLen = 1 + 16 + 2

// openDatagram decrypts a shadowsocks UDP relay datagram in place,
//
//	[salt][sealed: target address, payload][tag]
//
// and decodes the target address its plaintext starts with. It returns
// the salt (pkt's own first octets, which decryption leaves alone), the
// target and the payload (a part of pkt), or the reason the datagram is
// rejected: RejectTruncated when it is too short to hold a salt and a tag,
// RejectAuth when it does not authenticate, RejectAddress when its
// plaintext does not start with a whole address.
func openDatagram(key *shadowsocks.EncryptionKey, pkt []byte) (salt []byte, dst socksaddr.Addr, payload []byte, reason string) {
	if len(pkt) < key.SaltSize()+key.TagSize() {
		return nil, socksaddr.Addr{}, nil, RejectTruncated
	}
	plain, err := shadowsocks.Unpack(nil, pkt, key)
	if err != nil {
		if errors.Is(err, shadowsocks.ErrShortPacket) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, socksaddr.Addr{}, nil, RejectTruncated
		}
		return nil, socksaddr.Addr{}, nil, RejectAuth
	}
	dst, n, err := socksaddr.Parse(plain)
	if err != nil {
		return nil, socksaddr.Addr{}, nil, RejectAddress
	}
	return pkt[:key.SaltSize()], dst, plain[n:], ""
}

// replyHead is where sealDatagram wants a reply's payload in its buffer:
// after room for the salt and the longest address.
func replyHead(key *shadowsocks.EncryptionKey) int { return key.SaltSize() + maxAddrLen }

// sealDatagram seals the reply of n octets that buf holds at
// replyHead(key), from src, into a shadowsocks UDP relay datagram, in
// place: src's address goes right before the payload (which moves up
// when the address is shorter than the longest), the salt before that,
// and the tag after. buf must have room for the tag after the payload.
func sealDatagram(buf []byte, n int, src netip.AddrPort, key *shadowsocks.EncryptionKey, sg shadowsocks.SaltGenerator) ([]byte, error) {
	head := replyHead(key)
	if len(buf) < head+n+key.TagSize() {
		return nil, io.ErrShortBuffer
	}
	a := socksaddr.Addr{IP: src.Addr().Unmap(), Port: src.Port()}
	var ab [maxAddrLen]byte
	addr := socksaddr.Append(ab[:0], a)
	salt := key.SaltSize()
	if len(addr) < maxAddrLen {
		copy(buf[salt+len(addr):], buf[head:head+n])
	}
	copy(buf[salt:], addr)
	plain := buf[salt : salt+len(addr)+n]
	return shadowsocks.PackSalt(buf, plain, key, sg)
}

// Package dnsstream frames DNS messages on a byte stream as DNS over TCP
// does (RFC 1035 section 4.2.2, RFC 7766 section 8): each message is
// preceded by its length, two octets in network byte order. The box's
// upstream resolvers (TCP, and through the aggregation peer in the
// shadowsocks stream) and the proxy's end-to-end probe of the peer share
// it. It has no sockets and no clock.
package dnsstream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderLen is the length of a DNS message's header (RFC 1035 section
// 4.1.1), the shortest message Read returns.
const HeaderLen = 12

// MaxLen is the longest message the two length octets can announce.
const MaxLen = 1<<16 - 1

// ErrTooLong says a message is longer than MaxLen.
var ErrTooLong = errors.New("dnsstream: message longer than 65535 octets")

// Append appends msg to b, preceded by its length.
func Append(b, msg []byte) ([]byte, error) {
	if len(msg) > MaxLen {
		return b, ErrTooLong
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	return append(b, msg...), nil
}

// Write writes msg to w, preceded by its length, in one Write call: the
// length and the message leave together (RFC 7766 section 8), and in one
// chunk of a shadowsocks stream.
func Write(w io.Writer, msg []byte) error {
	b, err := Append(make([]byte, 0, 2+len(msg)), msg)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Read reads one message from r: its length, then that many octets. It
// returns io.EOF when r ends cleanly before a message starts,
// io.ErrUnexpectedEOF when it ends within one, and an error for a length
// shorter than a DNS header.
func Read(r io.Reader) ([]byte, error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	l := int(binary.BigEndian.Uint16(n[:]))
	if l < HeaderLen {
		return nil, fmt.Errorf("dnsstream: a message of %d octets, shorter than a DNS header", l)
	}
	msg := make([]byte, l)
	if _, err := io.ReadFull(r, msg); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return msg, nil
}

// Package socksaddr decodes the target address a shadowsocks stream starts
// with: the address of SOCKS5 (RFC 1928, section 5), an address type
// octet, the address, and a port in network byte order:
//
//	+------+----------+------+
//	| ATYP | ADDRESS  | PORT |
//	+------+----------+------+
//	|  1   | variable |  2   |
//	+------+----------+------+
//
// ATYP 1 is an IPv4 address (4 octets), 3 a domain name (a length octet,
// then that many octets), 4 an IPv6 address (16 octets). It has no
// sockets and no clock.
package socksaddr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
)

// Address types.
const (
	TypeIPv4   = 1
	TypeDomain = 3
	TypeIPv6   = 4
)

// MaxLen is the longest encoded address: a domain of 255 octets.
const MaxLen = 1 + 1 + 255 + 2

// ErrShort says the bytes end before the address does.
var ErrShort = errors.New("socks address: truncated")

// Addr is a decoded target: an IP address or a domain name, and a port.
type Addr struct {
	// IP is the address when the type is IPv4 or IPv6 (an IPv4 address
	// is never 4in6); invalid for a domain.
	IP netip.Addr
	// Domain is the name when the type is a domain.
	Domain string
	Port   uint16
}

// String is HOST:PORT, as net.Dial takes it.
func (a Addr) String() string {
	if a.IP.IsValid() {
		return netip.AddrPortFrom(a.IP, a.Port).String()
	}
	return a.Domain + ":" + strconv.Itoa(int(a.Port))
}

// Parse decodes the address at the start of b and returns it with the
// number of octets it took. It returns ErrShort when b ends before the
// address does, and another error for an unknown address type or a
// domain that is empty or holds an octet no host name has.
func Parse(b []byte) (Addr, int, error) {
	if len(b) < 1 {
		return Addr{}, 0, ErrShort
	}
	var a Addr
	n := 1
	switch b[0] {
	case TypeIPv4:
		if len(b) < n+4+2 {
			return Addr{}, 0, ErrShort
		}
		a.IP = netip.AddrFrom4([4]byte(b[n : n+4]))
		n += 4
	case TypeIPv6:
		if len(b) < n+16+2 {
			return Addr{}, 0, ErrShort
		}
		a.IP = netip.AddrFrom16([16]byte(b[n : n+16]))
		n += 16
	case TypeDomain:
		if len(b) < n+1 {
			return Addr{}, 0, ErrShort
		}
		l := int(b[n])
		n++
		if l == 0 {
			return Addr{}, 0, errors.New("socks address: empty domain name")
		}
		if len(b) < n+l+2 {
			return Addr{}, 0, ErrShort
		}
		name := b[n : n+l]
		for _, c := range name {
			if !hostOctet(c) {
				return Addr{}, 0, fmt.Errorf("socks address: domain name with octet %#02x", c)
			}
		}
		a.Domain = string(name)
		n += l
	default:
		return Addr{}, 0, fmt.Errorf("socks address: unknown address type %d", b[0])
	}
	a.Port = binary.BigEndian.Uint16(b[n:])
	return a, n + 2, nil
}

// hostOctet reports whether c may appear in a host name as a resolver
// takes it: letters, digits, '-', '.', '_'.
func hostOctet(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_'
}

// Read decodes an address from r, reading no octet past its end. An
// address cut short by the end of r is io.ErrUnexpectedEOF (io.EOF when r
// ends before its first octet).
func Read(r io.Reader) (Addr, error) {
	var buf [MaxLen]byte
	if _, err := io.ReadFull(r, buf[:1]); err != nil {
		return Addr{}, err
	}
	var need int
	switch buf[0] {
	case TypeIPv4:
		need = 1 + 4 + 2
	case TypeIPv6:
		need = 1 + 16 + 2
	case TypeDomain:
		if _, err := io.ReadFull(r, buf[1:2]); err != nil {
			return Addr{}, unexpected(err)
		}
		need = 2 + int(buf[1]) + 2
	default:
		return Addr{}, fmt.Errorf("socks address: unknown address type %d", buf[0])
	}
	have := 1
	if buf[0] == TypeDomain {
		have = 2
	}
	if _, err := io.ReadFull(r, buf[have:need]); err != nil {
		return Addr{}, unexpected(err)
	}
	a, _, err := Parse(buf[:need])
	return a, err
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Append appends a's encoding to b.
func Append(b []byte, a Addr) []byte {
	switch {
	case a.IP.Is4():
		b = append(b, TypeIPv4)
		b = append(b, a.IP.AsSlice()...)
	case a.IP.IsValid():
		b = append(b, TypeIPv6)
		b = append(b, a.IP.AsSlice()...)
	default:
		b = append(b, TypeDomain, byte(len(a.Domain)))
		b = append(b, a.Domain...)
	}
	return binary.BigEndian.AppendUint16(b, a.Port)
}

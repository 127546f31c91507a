package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// DNS message constants (RFC 1035, section 4.1).
const (
	dnsHeaderLen = 12
	dnsFlagQR    = 1 << 15 // a response
	dnsFlagRD    = 1 << 8  // recursion desired
	dnsTypeA     = 1
	dnsClassIN   = 1
	// dnsMaxName is the longest name on the wire, length bytes and the
	// root's zero included.
	dnsMaxName  = 255
	dnsMaxLabel = 63
)

// dnsQuery returns a standard query with identifier id for name, type A,
// class IN, recursion desired: a header and one question.
func dnsQuery(id uint16, name string) ([]byte, error) {
	wire, err := encodeName(name)
	if err != nil {
		return nil, err
	}
	b := make([]byte, dnsHeaderLen, dnsHeaderLen+len(wire)+4)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], dnsFlagRD)
	binary.BigEndian.PutUint16(b[4:], 1) // QDCOUNT
	b = append(b, wire...)
	b = binary.BigEndian.AppendUint16(b, dnsTypeA)
	b = binary.BigEndian.AppendUint16(b, dnsClassIN)
	return b, nil
}

// encodeName turns a domain name in the usual dotted form ("example.net",
// with or without the final dot; "." is the root) into its wire form:
// each label preceded by its length, then a zero. Labels are taken as
// they are written, byte for byte: no escapes (\.), no case folding.
func encodeName(name string) ([]byte, error) {
	if name == "" {
		return nil, errors.New("empty domain name")
	}
	if name == "." {
		return []byte{0}, nil
	}
	name = strings.TrimSuffix(name, ".")
	// Each label costs its length plus one byte, the root one more.
	if len(name)+2 > dnsMaxName {
		return nil, fmt.Errorf("domain name %q is longer than %d bytes on the wire", name, dnsMaxName)
	}
	b := make([]byte, 0, len(name)+2)
	for label := range strings.SplitSeq(name, ".") {
		switch {
		case label == "":
			return nil, fmt.Errorf("domain name %q has an empty label", name)
		case len(label) > dnsMaxLabel:
			return nil, fmt.Errorf("domain name %q has a label longer than %d bytes", name, dnsMaxLabel)
		}
		b = append(b, byte(len(label)))
		b = append(b, label...)
	}
	return append(b, 0), nil
}

// dnsHeader is the fixed header of a DNS message.
type dnsHeader struct {
	ID    uint16
	Flags uint16
	// Counts of the question, answer, authority and additional sections.
	QDCount, ANCount, NSCount, ARCount uint16
}

// Response reports whether the message is a response (QR set).
func (h dnsHeader) Response() bool { return h.Flags&dnsFlagQR != 0 }

// RCode is the response code (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN...).
func (h dnsHeader) RCode() int { return int(h.Flags & 0xf) }

// errShortDNS is parseDNSHeader's error for fewer than twelve bytes.
var errShortDNS = errors.New("shorter than a DNS header")

// parseDNSHeader parses the header of a DNS message; the rest of b is
// not looked at.
func parseDNSHeader(b []byte) (dnsHeader, error) {
	if len(b) < dnsHeaderLen {
		return dnsHeader{}, errShortDNS
	}
	return dnsHeader{
		ID:      binary.BigEndian.Uint16(b[0:]),
		Flags:   binary.BigEndian.Uint16(b[2:]),
		QDCount: binary.BigEndian.Uint16(b[4:]),
		ANCount: binary.BigEndian.Uint16(b[6:]),
		NSCount: binary.BigEndian.Uint16(b[8:]),
		ARCount: binary.BigEndian.Uint16(b[10:]),
	}, nil
}

// isDNSReply reports whether b answers the query with identifier id: a
// response carrying id, whatever its response code.
func isDNSReply(b []byte, id uint16) bool {
	h, err := parseDNSHeader(b)
	return err == nil && h.Response() && h.ID == id
}

// DNSQuery returns the query a DNS probe sends (see dnsQuery), for a
// caller that carries it itself: the transparent proxy's end-to-end probe
// of its peer sends it over TCP, through the peer.
func DNSQuery(id uint16, name string) ([]byte, error) { return dnsQuery(id, name) }

// IsDNSReply reports whether b is a response to the query with
// identifier id, whatever its response code, as a DNS probe judges it.
func IsDNSReply(b []byte, id uint16) bool { return isDNSReply(b, id) }

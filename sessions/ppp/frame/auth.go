package frame

import (
	"crypto/md5"
	"fmt"
)

// Codes of CHAP's packets (RFC 1994 section 4).
const (
	CHAPChallenge uint8 = 1
	CHAPResponse  uint8 = 2
	CHAPSuccess   uint8 = 3
	CHAPFailure   uint8 = 4
)

// Codes of PAP's packets (RFC 1334 section 2.2).
const (
	PAPRequest uint8 = 1 // Authenticate-Request
	PAPAck     uint8 = 2 // Authenticate-Ack
	PAPNak     uint8 = 3 // Authenticate-Nak
)

// CHAP is a CHAP packet (RFC 1994 section 4). A Challenge or a Response
// has a Value and a Name; a Success or a Failure has a Message.
type CHAP struct {
	Code uint8
	ID   uint8
	// Value is the challenge (Challenge), or the hash (Response).
	Value []byte
	// Name identifies the sender: the authenticator's name in a
	// Challenge, the login in a Response.
	Name []byte
	// Message is a Success's or a Failure's text, for people.
	Message []byte
}

// ParseCHAP reads a CHAP packet from a frame's Information field.
func ParseCHAP(b []byte) (CHAP, error) {
	p, err := ParsePacket(b)
	if err != nil {
		return CHAP{}, fmt.Errorf("CHAP: %w", err)
	}
	c := CHAP{Code: p.Code, ID: p.ID}
	switch p.Code {
	case CHAPChallenge, CHAPResponse:
		if len(p.Data) < 1 || int(p.Data[0]) > len(p.Data)-1 {
			return CHAP{}, fmt.Errorf("CHAP %s: %w: Value-Size beyond the packet", chapCodeName(p.Code), ErrMalformed)
		}
		n := int(p.Data[0])
		c.Value, c.Name = p.Data[1:1+n], p.Data[1+n:]
	case CHAPSuccess, CHAPFailure:
		c.Message = p.Data
	default:
		return CHAP{}, fmt.Errorf("CHAP: %w: unknown code %d", ErrMalformed, p.Code)
	}
	return c, nil
}

// Append appends the packet to dst and returns the result.
func (c CHAP) Append(dst []byte) []byte {
	p := Packet{Code: c.Code, ID: c.ID}
	switch c.Code {
	case CHAPChallenge, CHAPResponse:
		if len(c.Value) > 255 {
			panic(fmt.Sprintf("frame: a CHAP value of %d octets", len(c.Value)))
		}
		p.Data = append(append([]byte{byte(len(c.Value))}, c.Value...), c.Name...)
	default:
		p.Data = c.Message
	}
	return p.Append(dst)
}

// chapCodeName names a CHAP code as RFC 1994 does.
func chapCodeName(c uint8) string {
	switch c {
	case CHAPChallenge:
		return "Challenge"
	case CHAPResponse:
		return "Response"
	case CHAPSuccess:
		return "Success"
	case CHAPFailure:
		return "Failure"
	}
	return fmt.Sprintf("code %d", c)
}

// CHAPMD5 is the Value of a Response to the Challenge value challenge
// with Identifier id, for secret: MD5 over the Identifier, the secret and
// the challenge, in that order (RFC 1994 section 4.1, algorithm 5).
func CHAPMD5(id uint8, secret, challenge []byte) [md5.Size]byte {
	h := md5.New()
	h.Write([]byte{id})
	h.Write(secret)
	h.Write(challenge)
	return [md5.Size]byte(h.Sum(nil))
}

// PAP is a PAP packet (RFC 1334 section 2.2). An Authenticate-Request has
// a PeerID and a Password; an Authenticate-Ack or -Nak has a Message.
type PAP struct {
	Code     uint8
	ID       uint8
	PeerID   []byte
	Password []byte
	Message  []byte
}

// ParsePAP reads a PAP packet from a frame's Information field. An Ack or
// a Nak without its Msg-Length octet is read as one with no message: RFC
// 1334 asks for the octet, but a reply is what matters.
func ParsePAP(b []byte) (PAP, error) {
	p, err := ParsePacket(b)
	if err != nil {
		return PAP{}, fmt.Errorf("PAP: %w", err)
	}
	a := PAP{Code: p.Code, ID: p.ID}
	d := p.Data
	switch p.Code {
	case PAPRequest:
		if len(d) < 1 || int(d[0]) > len(d)-1 {
			return PAP{}, fmt.Errorf("PAP Authenticate-Request: %w: Peer-ID Length beyond the packet", ErrMalformed)
		}
		n := 1 + int(d[0]) // int first: a byte sum of 255 and 1 wraps to 0
		a.PeerID, d = d[1:n], d[n:]
		if len(d) < 1 || int(d[0]) > len(d)-1 {
			return PAP{}, fmt.Errorf("PAP Authenticate-Request: %w: Passwd-Length beyond the packet", ErrMalformed)
		}
		a.Password = d[1 : 1+int(d[0])]
	case PAPAck, PAPNak:
		if len(d) == 0 {
			break
		}
		if int(d[0]) > len(d)-1 {
			return PAP{}, fmt.Errorf("PAP: %w: Msg-Length beyond the packet", ErrMalformed)
		}
		a.Message = d[1 : 1+int(d[0])]
	default:
		return PAP{}, fmt.Errorf("PAP: %w: unknown code %d", ErrMalformed, p.Code)
	}
	return a, nil
}

// Append appends the packet to dst and returns the result. Fields longer
// than their one-octet lengths can say are the caller's bug, and panic.
func (a PAP) Append(dst []byte) []byte {
	field := func(b []byte, v []byte, what string) []byte {
		if len(v) > 255 {
			panic(fmt.Sprintf("frame: a PAP %s of %d octets", what, len(v)))
		}
		return append(append(b, byte(len(v))), v...)
	}
	p := Packet{Code: a.Code, ID: a.ID}
	if a.Code == PAPRequest {
		p.Data = field(field(nil, a.PeerID, "Peer-ID"), a.Password, "password")
	} else {
		p.Data = field(nil, a.Message, "message")
	}
	return p.Append(dst)
}

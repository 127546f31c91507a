package upstream

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"

	"github.com/miekg/dns"
)

// Errors of a reply that is not the query's.
var (
	errNotReply = errors.New("not a response to the query")
	errQuestion = errors.New("a response to another question")
)

// withID is a copy of the packed query msg with the identifier id.
func withID(msg []byte, id uint16) []byte {
	m := append([]byte(nil), msg...)
	binary.BigEndian.PutUint16(m, id)
	return m
}

// newID is a fresh query identifier, unpredictable to whoever would
// spoof the answer (RFC 5452).
func newID() uint16 { return uint16(rand.Uint32()) }

// decode decodes b as the response to q, sent with identifier id: a
// response with that identifier to the same question (its name in any
// case, RFC 4343). A truncated response that does not decode in full
// (cut within a record) is returned as its header, which is all a
// retry over TCP needs.
func decode(b []byte, id uint16, q *dns.Msg) (*dns.Msg, error) {
	if len(b) < 12 || binary.BigEndian.Uint16(b) != id || b[2]&0x80 == 0 {
		return nil, errNotReply
	}
	r := new(dns.Msg)
	if err := r.Unpack(b); err != nil {
		if b[2]&0x02 != 0 { // TC
			return &dns.Msg{MsgHdr: dns.MsgHdr{Id: id, Response: true, Truncated: true}}, nil
		}
		return nil, err
	}
	if r.Truncated && len(r.Question) == 0 {
		return r, nil // some servers leave the question out of a truncated answer
	}
	if !sameQuestion(r.Question, q.Question) {
		return nil, errQuestion
	}
	return r, nil
}

func sameQuestion(a, b []dns.Question) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Qtype != b[i].Qtype || a[i].Qclass != b[i].Qclass || !strings.EqualFold(a[i].Name, b[i].Name) {
			return false
		}
	}
	return true
}

// outcome judges a decoded response: SERVFAIL and REFUSED decline the
// query, every other code answers it.
func outcome(r *dns.Msg) Outcome {
	switch r.Rcode {
	case dns.RcodeServerFailure, dns.RcodeRefused:
		return Declined
	}
	return Answered
}

package upstream

import (
	"errors"
	"testing"

	"github.com/miekg/dns"
)

// TestDecode: what a resolver sends back is taken as the query's answer
// only when it is a response with the query's identifier to its
// question (the name in any case); a truncated answer cut within a
// record still says it is truncated.
func TestDecode(t *testing.T) {
	q := new(dns.Msg).SetQuestion("www.Example.test.", dns.TypeA)
	answer := func(edit func(r *dns.Msg)) []byte {
		r := new(dns.Msg).SetReply(q)
		r.Id = 7
		r.Answer = append(r.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 0, 2, 1}})
		if edit != nil {
			edit(r)
		}
		b, err := r.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cut := answer(func(r *dns.Msg) { r.Truncated = true })
	cut = cut[:len(cut)-3]
	cutNoTC := answer(nil)
	cutNoTC = cutNoTC[:len(cutNoTC)-3]
	for _, tc := range []struct {
		name      string
		b         []byte
		err       error // nil: no error; errAny: any
		truncated bool
	}{
		{name: "the answer", b: answer(nil)},
		{name: "the name in another case", b: answer(func(r *dns.Msg) { r.Question[0].Name = "WWW.example.TEST." })},
		{name: "NXDOMAIN", b: answer(func(r *dns.Msg) { r.Rcode = dns.RcodeNameError; r.Answer = nil })},
		{name: "another identifier", b: answer(func(r *dns.Msg) { r.Id = 8 }), err: errNotReply},
		{name: "a query", b: answer(func(r *dns.Msg) { r.Response = false }), err: errNotReply},
		{name: "another name", b: answer(func(r *dns.Msg) { r.Question[0].Name = "example.test." }), err: errQuestion},
		{name: "another type", b: answer(func(r *dns.Msg) { r.Question[0].Qtype = dns.TypeAAAA }), err: errQuestion},
		{name: "no question", b: answer(func(r *dns.Msg) { r.Question = nil }), err: errQuestion},
		{name: "truncated without its question", b: answer(func(r *dns.Msg) { r.Question, r.Answer, r.Truncated = nil, nil, true }), truncated: true},
		{name: "truncated within a record", b: cut, truncated: true},
		{name: "cut within a record, not truncated", b: cutNoTC, err: errAny},
		{name: "shorter than a header", b: []byte{0, 7, 0x80}, err: errNotReply},
	} {
		r, err := decode(tc.b, 7, q)
		switch {
		case tc.err == nil && err != nil, tc.err != nil && err == nil:
			t.Errorf("%s: decode = %v, want %v", tc.name, err, tc.err)
		case tc.err != nil && tc.err != errAny && !errors.Is(err, tc.err):
			t.Errorf("%s: decode = %v, want %v", tc.name, err, tc.err)
		case err == nil && r.Truncated != tc.truncated:
			t.Errorf("%s: truncated %v, want %v", tc.name, r.Truncated, tc.truncated)
		}
	}
}

var errAny = errors.New("any error")

// TestOutcome: SERVFAIL and REFUSED decline; the other codes answer.
func TestOutcome(t *testing.T) {
	for rcode, want := range map[int]Outcome{
		dns.RcodeSuccess: Answered, dns.RcodeNameError: Answered, dns.RcodeFormatError: Answered,
		dns.RcodeServerFailure: Declined, dns.RcodeRefused: Declined,
	} {
		if got := outcome(&dns.Msg{MsgHdr: dns.MsgHdr{Rcode: rcode}}); got != want {
			t.Errorf("%s: %v, want %v", dns.RcodeToString[rcode], got, want)
		}
	}
}

package upstream

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzDecode checks that decode never panics on what a resolver sends
// back, and that what it accepts is a response with the query's
// identifier, to its question unless truncated.
func FuzzDecode(f *testing.F) {
	q := new(dns.Msg).SetQuestion("example.test.", dns.TypeA)
	r := new(dns.Msg).SetReply(q)
	r.Id = 7
	r.Answer = append(r.Answer, &dns.A{Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 0, 2, 1}})
	b, err := r.Pack()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)-3])
	f.Add([]byte{0, 7, 0x82, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decode(b, 7, q)
		if err != nil {
			return
		}
		if r.Id != 7 || !r.Response {
			t.Fatalf("accepted %x as %v", b, r)
		}
		if !r.Truncated && !sameQuestion(r.Question, q.Question) {
			t.Fatalf("accepted an answer to %v", r.Question)
		}
	})
}

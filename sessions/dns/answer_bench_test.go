package dns

import (
	"context"
	"net"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkAnswerCached is the message path of a cache hit, from the
// query's bytes to the reply's: what bounds the cached rate on one core.
func BenchmarkAnswerCached(b *testing.B) {
	ans := new(dns.Msg)
	ans.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "a.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.IPv4(192, 0, 2, 1)}}
	e := fuzzEngine(b, answerAsker{answer: ans, fix: true})
	raw, _ := query("a.example.", dns.TypeA, true).Pack()
	if out := e.answer(context.Background(), raw, true); out == nil {
		b.Fatal("no reply")
	}
	b.ReportAllocs()
	for b.Loop() {
		e.answer(context.Background(), raw, true)
	}
}

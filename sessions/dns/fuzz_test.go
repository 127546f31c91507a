package dns

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/braid-router/braid/drivers/nftables"
	"github.com/braid-router/braid/sessions/dns/cache"
)

// fuzzCacheBytes is the fuzzed engine's cache bound.
const fuzzCacheBytes = 64 << 10

// fuzzConfig is the fuzzed engine's policy: every AAAA filtered under
// f.example, egress for e.example.
var fuzzConfig = Config{
	FilterAAAA: []string{"f.example"},
	Egress:     []Egress{{Uplink: "wan", Domains: []string{"e.example"}, Set4: "egress_wan_v4", Set6: "egress_wan_v6"}},
}

// answerAsker answers every query with the message it holds (its ID and
// question set to the query's when fix is set), or fails when it holds
// none: the fuzz targets' upstream, which answers what the fuzzer wrote.
type answerAsker struct {
	answer *dns.Msg
	fix    bool
}

func (a answerAsker) Ask(_ context.Context, q *dns.Msg) (*dns.Msg, error) {
	if a.answer == nil {
		return nil, errors.New("no answer")
	}
	m := a.answer.Copy()
	if a.fix {
		m.Id = q.Id
		m.Response = true
		m.Question = q.Question
	}
	return m, nil
}

// checkSets checks the elements the engine commits: each in the set of
// its family, with at least the minimum timeout.
type checkSets struct{ t testing.TB }

func (s checkSets) Add(_ context.Context, es []nftables.TimedElement) error {
	for _, e := range es {
		want := "egress_wan_v6"
		if e.Addr.Is4() {
			want = "egress_wan_v4"
		}
		if e.Set != want || e.Addr.Is4In6() || e.Timeout < 10*time.Minute {
			s.t.Fatalf("element %+v", e)
		}
	}
	return nil
}

// fuzzEngine is an engine asking asker, with a small cache.
func fuzzEngine(t testing.TB, asker Asker) *engine {
	r, err := newRules(fuzzConfig, asker, checkSets{t})
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{
		ctx:     context.Background(),
		cache:   cache.New(cache.Config{MaxBytes: fuzzCacheBytes}),
		stats:   new(Stats),
		log:     slog.New(slog.DiscardHandler),
		udpSize: DefaultUDPSize,
		timeout: time.Second,
		now:     time.Now,
		calls:   map[cache.Key]*call{},
	}
	e.rules.Store(r)
	return e
}

// checkReply checks a reply to raw: it parses, keeps the query's ID, and
// over UDP fits the client's size.
func checkReply(t *testing.T, raw, out []byte, udp bool) {
	t.Helper()
	if out == nil {
		return
	}
	m := new(dns.Msg)
	if err := m.Unpack(out); err != nil {
		t.Fatalf("reply %x does not parse: %v", out, err)
	}
	if !m.Response || m.Id != binary.BigEndian.Uint16(raw) {
		t.Fatalf("reply %v to %x", m, raw)
	}
	if !udp {
		return
	}
	limit := dns.MinMsgSize
	q := new(dns.Msg)
	if q.Unpack(raw) == nil {
		if opt := q.IsEdns0(); opt != nil {
			limit = min(max(int(opt.UDPSize()), dns.MinMsgSize), DefaultUDPSize)
		}
	}
	if len(out) > limit {
		t.Fatalf("UDP reply of %d octets, the client takes %d", len(out), limit)
	}
}

// FuzzQuery feeds arbitrary bytes to the message path as a query over UDP
// and TCP: it never panics, and what it replies parses, keeps the ID and
// fits the client.
func FuzzQuery(f *testing.F) {
	for _, q := range []*dns.Msg{
		query("a.e.example.", dns.TypeA, false),
		query("A.F.Example.", dns.TypeAAAA, true),
		query("svc.e.example.", dns.TypeHTTPS, true),
		query("big.example.", dns.TypeTXT, false),
	} {
		raw, _ := q.Pack()
		f.Add(raw)
	}
	f.Add([]byte{0x12, 0x34, 0x01, 0x00, 0, 2, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x12, 0x34, 0x28, 0x00, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, raw []byte) {
		// The upstream answers with many records, AAAA and hints
		// included, so that filtering, egress and truncation all run.
		ans := new(dns.Msg)
		for i := range 40 {
			ans.Answer = append(ans.Answer, &dns.A{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, byte(i))})
		}
		e := fuzzEngine(t, answerAsker{answer: ans, fix: true})
		for _, udp := range []bool{true, false} {
			out := e.answer(context.Background(), raw, udp)
			checkReply(t, raw, out, udp)
		}
		if e.cache.Bytes() > fuzzCacheBytes {
			t.Fatalf("cache holds %d octets, bound %d", e.cache.Bytes(), fuzzCacheBytes)
		}
	})
}

// FuzzAnswer feeds arbitrary bytes to the message path as the upstream's
// answer, to a query for its own question (or a fixed one), asked twice
// (the second from the cache, if it was cached) and with another case:
// through the cache, the egress policy, the AAAA filter and truncation,
// nothing panics, the cache stays in its bound, replies parse and fit.
func FuzzAnswer(f *testing.F) {
	seeds := []*dns.Msg{}
	m := new(dns.Msg)
	m.SetQuestion("a.e.example.", dns.TypeA)
	m.Response = true
	m.Answer = []dns.RR{
		&dns.CNAME{Hdr: dns.RR_Header{Name: "a.e.example.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 300}, Target: "b.f.example."},
		&dns.A{Hdr: dns.RR_Header{Name: "b.f.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.IPv4(192, 0, 2, 1)},
	}
	seeds = append(seeds, m)
	m = new(dns.Msg)
	m.SetQuestion("svc.e.example.", dns.TypeHTTPS)
	m.Response = true
	m.Answer = []dns.RR{&dns.HTTPS{SVCB: dns.SVCB{Hdr: dns.RR_Header{Name: "svc.e.example.", Rrtype: dns.TypeHTTPS, Class: dns.ClassINET, Ttl: 300}, Priority: 1, Target: ".",
		Value: []dns.SVCBKeyValue{&dns.SVCBIPv4Hint{Hint: []net.IP{net.IPv4(192, 0, 2, 2)}}, &dns.SVCBIPv6Hint{Hint: []net.IP{net.ParseIP("2001:db8::2")}}}}}}
	seeds = append(seeds, m)
	m = new(dns.Msg)
	m.SetQuestion("nx.f.example.", dns.TypeAAAA)
	m.Response = true
	m.Rcode = dns.RcodeNameError
	m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "f.example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60}, Ns: "ns.f.example.", Mbox: "a.f.example.", Minttl: 30}}
	seeds = append(seeds, m)
	m = new(dns.Msg)
	m.SetQuestion("big.e.example.", dns.TypeTXT)
	m.Response = true
	m.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "big.e.example.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}, Txt: []string{strings.Repeat("x", 255), strings.Repeat("y", 255), strings.Repeat("z", 255)}}}
	seeds = append(seeds, m)
	for _, s := range seeds {
		raw, _ := s.Pack()
		f.Add(raw, true)
		f.Add(raw, false)
	}
	f.Fuzz(func(t *testing.T, raw []byte, fix bool) {
		ans := new(dns.Msg)
		if ans.Unpack(raw) != nil {
			ans = nil
		}
		e := fuzzEngine(t, answerAsker{answer: ans, fix: fix})
		name, qtype := "a.e.example.", dns.TypeA
		if ans != nil && len(ans.Question) == 1 && ans.Question[0].Qtype != dns.TypeOPT {
			name, qtype = ans.Question[0].Name, ans.Question[0].Qtype
		}
		for i, n := range []string{name, strings.ToUpper(name), name} {
			q := query(n, qtype, i == 2)
			q.Id = uint16(i + 1)
			qraw, err := q.Pack()
			if err != nil {
				return // a name miekg/dns will not pack as a query
			}
			for _, udp := range []bool{true, false} {
				out := e.answer(context.Background(), qraw, udp)
				checkReply(t, qraw, out, udp)
			}
		}
		if e.cache.Bytes() > fuzzCacheBytes {
			t.Fatalf("cache holds %d octets, bound %d", e.cache.Bytes(), fuzzCacheBytes)
		}
	})
}

// streamConn is a TCP connection's client side as bytes: reads come from
// in, then EOF; writes go to out.
type streamConn struct {
	in  *bytes.Reader
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *streamConn) Read(p []byte) (int, error) { return c.in.Read(p) }
func (c *streamConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}
func (c *streamConn) Close() error                     { return nil }
func (c *streamConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *streamConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *streamConn) SetDeadline(time.Time) error      { return nil }
func (c *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzTCPStream feeds arbitrary bytes to a TCP connection's reader (RFC
// 7766 framing: length-prefixed queries, several in a row): it never
// panics, and every reply it writes is framed, parses, and answers one
// of the queries sent.
func FuzzTCPStream(f *testing.F) {
	var stream []byte
	for i, n := range []string{"a.e.example.", "b.f.example."} {
		q := query(n, dns.TypeA, i == 1)
		q.Id = uint16(i + 1)
		raw, _ := q.Pack()
		stream = binary.BigEndian.AppendUint16(stream, uint16(len(raw)))
		stream = append(stream, raw...)
	}
	f.Add(stream)
	f.Add(stream[:len(stream)-3])
	f.Add([]byte{0xff, 0xff, 1, 2})
	f.Add([]byte{0, 12, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, stream []byte) {
		ans := new(dns.Msg)
		ans.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)}}
		e := fuzzEngine(t, answerAsker{answer: ans, fix: true})
		s := &Server{stats: e.stats}
		c := &streamConn{in: bytes.NewReader(stream)}
		s.serveConn(context.Background(), e, c, netip.MustParseAddr("192.0.2.99"), newLimiter(4, 4))
		// The IDs of the queries sent, as framed.
		ids := map[uint16]bool{}
		for rest := stream; len(rest) >= 2; {
			n := int(binary.BigEndian.Uint16(rest))
			if len(rest) < 2+n || n > maxTCPQuery {
				break
			}
			if n >= 2 {
				ids[binary.BigEndian.Uint16(rest[2:])] = true
			}
			rest = rest[2+n:]
		}
		out := c.out.Bytes()
		for len(out) > 0 {
			if len(out) < 2 || len(out) < 2+int(binary.BigEndian.Uint16(out)) {
				t.Fatalf("a reply cut short: %x", out)
			}
			n := int(binary.BigEndian.Uint16(out))
			m := new(dns.Msg)
			if err := m.Unpack(out[2 : 2+n]); err != nil {
				t.Fatalf("reply %x does not parse: %v", out[2:2+n], err)
			}
			if !m.Response || !ids[m.Id] {
				t.Fatalf("reply %v answers no query sent", m)
			}
			out = out[2+n:]
		}
	})
}

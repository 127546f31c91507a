package cache

import (
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var t0 = time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)

func rr(t testing.TB, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("NewRR(%q): %v", s, err)
	}
	return r
}

func query(name string, qtype uint16, do bool) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 4242
	if do {
		m.SetEdns0(1232, true)
	}
	return m
}

// reply is an upstream's reply to q with rcode and the records given as
// zone-file lines, section by section.
func reply(t testing.TB, q *dns.Msg, rcode int, answer, ns, extra []string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetRcode(q, rcode)
	m.RecursionAvailable = true
	for _, s := range answer {
		m.Answer = append(m.Answer, rr(t, s))
	}
	for _, s := range ns {
		m.Ns = append(m.Ns, rr(t, s))
	}
	for _, s := range extra {
		m.Extra = append(m.Extra, rr(t, s))
	}
	return m
}

// soa is example.com's SOA with the record's TTL and the MINIMUM field.
func soa(ttl, minimum int) string {
	return fmt.Sprintf("example.com. %d IN SOA ns1.example.com. hostmaster.example.com. 1 7200 900 1209600 %d", ttl, minimum)
}

// TestLifetime checks which answers are cached and for exactly how long:
// served a second before the lifetime ends, not at its end.
func TestLifetime(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		qtype  uint16
		rcode  int
		answer []string
		ns     []string
		extra  []string
		mutate func(*dns.Msg)
		want   time.Duration // 0: not cached
	}{
		{name: "positive: the answer's TTL", qtype: dns.TypeA, answer: []string{"www.example.com. 300 IN A 192.0.2.1"}, want: 300 * time.Second},
		{name: "positive: the lowest TTL of the answer", qtype: dns.TypeA,
			answer: []string{"www.example.com. 300 IN CNAME web.example.com.", "web.example.com. 60 IN A 192.0.2.1"}, want: 60 * time.Second},
		{name: "positive: the lowest TTL of every section", qtype: dns.TypeA,
			answer: []string{"www.example.com. 300 IN A 192.0.2.1"},
			ns:     []string{"example.com. 200 IN NS ns1.example.com."},
			extra:  []string{"ns1.example.com. 100 IN A 192.0.2.53"}, want: 100 * time.Second},
		{name: "positive: capped by MaxTTL", cfg: Config{MaxTTL: time.Hour}, qtype: dns.TypeA,
			answer: []string{"www.example.com. 604800 IN A 192.0.2.1"}, want: time.Hour},
		{name: "positive: TTL 0 not cached", qtype: dns.TypeA, answer: []string{"www.example.com. 0 IN A 192.0.2.1"}},
		{name: "NXDOMAIN: SOA MINIMUM below its TTL (RFC 2308 s5)", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns: []string{soa(3600, 600)}, want: 600 * time.Second},
		{name: "NXDOMAIN: SOA TTL below its MINIMUM (RFC 2308 s5)", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns: []string{soa(60, 600)}, want: 60 * time.Second},
		{name: "NXDOMAIN with a CNAME chain and SOA (RFC 2308 s2.1 type 1)", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			answer: []string{"www.example.com. 3600 IN CNAME gone.example.com."},
			ns:     []string{soa(3600, 300)}, want: 300 * time.Second},
		{name: "NXDOMAIN: a CNAME's lower TTL", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			answer: []string{"www.example.com. 30 IN CNAME gone.example.com."},
			ns:     []string{soa(3600, 300)}, want: 30 * time.Second},
		{name: "NXDOMAIN: capped by MaxNegativeTTL", cfg: Config{MaxNegativeTTL: time.Minute}, qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns: []string{soa(86400, 86400)}, want: time.Minute},
		{name: "NXDOMAIN without SOA not cached (RFC 2308 s5)", qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "NXDOMAIN with NS only not cached (RFC 2308 s2.1 type 3)", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns: []string{"example.com. 3600 IN NS ns1.example.com."}},
		{name: "NODATA with SOA (RFC 2308 s2.2 type 1)", qtype: dns.TypeAAAA,
			ns: []string{soa(3600, 900)}, want: 900 * time.Second},
		{name: "NODATA with SOA and NS (RFC 2308 s2.2 type 2)", qtype: dns.TypeAAAA,
			ns: []string{soa(120, 900), "example.com. 3600 IN NS ns1.example.com."}, want: 120 * time.Second},
		{name: "NODATA without SOA not cached (RFC 2308 s2.2 type 3)", qtype: dns.TypeAAAA},
		{name: "referral not cached (RFC 2308 s2.2 type 4)", qtype: dns.TypeAAAA,
			ns: []string{"example.com. 3600 IN NS ns1.example.com."}},
		{name: "SERVFAIL not cached by default", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},
		{name: "SERVFAIL cached for ServFailTTL (RFC 2308 s7.1)", cfg: Config{ServFailTTL: 30 * time.Second}, qtype: dns.TypeA,
			rcode: dns.RcodeServerFailure, want: 30 * time.Second},
		{name: "SERVFAIL never more than 5 minutes (RFC 2308 s7.1)", cfg: Config{ServFailTTL: time.Hour}, qtype: dns.TypeA,
			rcode: dns.RcodeServerFailure, want: 5 * time.Minute},
		{name: "REFUSED not cached", qtype: dns.TypeA, rcode: dns.RcodeRefused, ns: []string{soa(3600, 600)}},
		{name: "truncated not cached", qtype: dns.TypeA, answer: []string{"www.example.com. 300 IN A 192.0.2.1"},
			mutate: func(m *dns.Msg) { m.Truncated = true }},
		{name: "not a response not cached", qtype: dns.TypeA, answer: []string{"www.example.com. 300 IN A 192.0.2.1"},
			mutate: func(m *dns.Msg) { m.Response = false }},
		{name: "other question not cached", qtype: dns.TypeA, answer: []string{"www.example.com. 300 IN A 192.0.2.1"},
			mutate: func(m *dns.Msg) { m.Question[0].Name = "evil.example.com." }},
		{name: "other type not cached", qtype: dns.TypeA, answer: []string{"www.example.com. 300 IN A 192.0.2.1"},
			mutate: func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAAAA }},
		{name: "question in other case cached", qtype: dns.TypeA, answer: []string{"www.example.com. 300 IN A 192.0.2.1"},
			mutate: func(m *dns.Msg) { m.Question[0].Name = "WWW.Example.COM." }, want: 300 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(tt.cfg)
			q := query("www.example.com.", tt.qtype, false)
			resp := reply(t, q, tt.rcode, tt.answer, tt.ns, tt.extra)
			if tt.mutate != nil {
				tt.mutate(resp)
			}
			if got := c.Put(q, resp, t0); got != (tt.want > 0) {
				t.Fatalf("Put = %v, want %v", got, tt.want > 0)
			}
			if tt.want == 0 {
				if _, ok := c.Get(q, t0); ok {
					t.Fatal("Get hit an answer that was not to be cached")
				}
				return
			}
			got, ok := c.Get(q, t0.Add(tt.want-time.Second))
			if !ok {
				t.Fatalf("Get missed a second before the lifetime %v ends", tt.want)
			}
			if got.Rcode != tt.rcode {
				t.Errorf("rcode %d, want %d", got.Rcode, tt.rcode)
			}
			for _, r := range append(append(got.Answer, got.Ns...), got.Extra...) {
				if r.Header().Ttl != 1 {
					t.Errorf("a second before expiry, %v has TTL %d, want 1", r, r.Header().Ttl)
				}
			}
			if _, ok := c.Get(q, t0.Add(tt.want)); ok {
				t.Fatalf("Get served past the lifetime %v", tt.want)
			}
			if c.Len() != 0 {
				t.Errorf("expired entry kept: Len %d", c.Len())
			}
		})
	}
}

// TestTTLDecrement checks that served TTLs fall by the whole seconds spent
// in the cache, each record from its own TTL capped at the entry's.
func TestTTLDecrement(t *testing.T) {
	c := New(Config{})
	q := query("www.example.com.", dns.TypeA, false)
	resp := reply(t, q, dns.RcodeSuccess, []string{
		"www.example.com. 3600 IN CNAME web.example.com.",
		"web.example.com. 100 IN A 192.0.2.1",
	}, []string{"example.com. 50000 IN NS ns1.example.com."}, nil)
	if !c.Put(q, resp, t0) {
		t.Fatal("Put refused a positive answer")
	}
	got, ok := c.Get(q, t0.Add(40*time.Second+900*time.Millisecond))
	if !ok {
		t.Fatal("miss")
	}
	for i, want := range []uint32{60, 60} {
		if ttl := got.Answer[i].Header().Ttl; ttl != want {
			t.Errorf("answer %d TTL %d, want %d", i, ttl, want)
		}
	}
	if ttl := got.Ns[0].Header().Ttl; ttl != 60 {
		t.Errorf("authority TTL %d, want 60", ttl)
	}
	// The upstream's message is untouched.
	if resp.Answer[0].Header().Ttl != 3600 {
		t.Errorf("Put changed the caller's message: TTL %d", resp.Answer[0].Header().Ttl)
	}
	// Modifying a reply does not change the cache.
	got.Answer[1].Header().Ttl = 9999
	again, _ := c.Get(q, t0.Add(41*time.Second))
	if ttl := again.Answer[1].Header().Ttl; ttl != 59 {
		t.Errorf("after the caller changed a reply, TTL %d, want 59", ttl)
	}
}

// TestNegativeSOATTL checks that a negative answer's SOA is served with
// the negative TTL, decremented (RFC 2308 section 5).
func TestNegativeSOATTL(t *testing.T) {
	c := New(Config{})
	q := query("gone.example.com.", dns.TypeA, false)
	if !c.Put(q, reply(t, q, dns.RcodeNameError, nil, []string{soa(3600, 300)}, nil), t0) {
		t.Fatal("Put refused NXDOMAIN with SOA")
	}
	got, ok := c.Get(q, t0.Add(100*time.Second))
	if !ok {
		t.Fatal("miss")
	}
	if got.Rcode != dns.RcodeNameError || len(got.Ns) != 1 {
		t.Fatalf("got rcode %d with %d authority records", got.Rcode, len(got.Ns))
	}
	if ttl := got.Ns[0].Header().Ttl; ttl != 200 {
		t.Errorf("SOA TTL %d, want 200", ttl)
	}
}

// TestIDAndCase checks that a hit carries the asking client's ID and its
// question as written, whoever's query filled the cache.
func TestIDAndCase(t *testing.T) {
	c := New(Config{})
	q := query("Www.Example.Com.", dns.TypeA, false)
	q.Id = 1
	resp := reply(t, q, dns.RcodeSuccess, []string{"www.example.com. 300 IN A 192.0.2.1"}, nil, nil)
	resp.Authoritative = true
	if !c.Put(q, resp, t0) {
		t.Fatal("Put refused")
	}
	q2 := query("wWW.eXAMPLE.cOM.", dns.TypeA, false)
	q2.Id = 0xbeef
	got, ok := c.Get(q2, t0)
	if !ok {
		t.Fatal("miss on the same name in other case")
	}
	if got.Id != 0xbeef {
		t.Errorf("ID %#x, want %#x", got.Id, 0xbeef)
	}
	if len(got.Question) != 1 || got.Question[0].Name != "wWW.eXAMPLE.cOM." {
		t.Errorf("question %v, want the client's wWW.eXAMPLE.cOM.", got.Question)
	}
	if !got.Response {
		t.Error("reply without the QR bit")
	}
	if got.Authoritative {
		t.Error("a cached answer served as authoritative")
	}
}

// TestKey checks that type, class and the DO bit part entries, and that the
// upstream's OPT is not served.
func TestKey(t *testing.T) {
	c := New(Config{})
	q := query("www.example.com.", dns.TypeA, true)
	resp := reply(t, q, dns.RcodeSuccess, []string{"www.example.com. 300 IN A 192.0.2.1"}, nil, nil)
	resp.SetEdns0(4096, true)
	if !c.Put(q, resp, t0) {
		t.Fatal("Put refused")
	}
	if _, ok := c.Get(query("www.example.com.", dns.TypeA, false), t0); ok {
		t.Error("a query without DO got the DO answer")
	}
	if _, ok := c.Get(query("www.example.com.", dns.TypeAAAA, true), t0); ok {
		t.Error("AAAA got the A answer")
	}
	chaos := query("www.example.com.", dns.TypeA, true)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	if _, ok := c.Get(chaos, t0); ok {
		t.Error("class CH got the IN answer")
	}
	cd := query("www.example.com.", dns.TypeA, true)
	cd.CheckingDisabled = true
	if _, ok := c.Get(cd, t0); ok {
		t.Error("a query with CD got the answer to one without")
	}
	got, ok := c.Get(query("www.example.com.", dns.TypeA, true), t0)
	if !ok {
		t.Fatal("miss with the same key")
	}
	if got.IsEdns0() != nil {
		t.Error("the upstream's OPT record was served")
	}
	if _, ok := c.Get(new(dns.Msg), t0); ok {
		t.Error("a query without a question hit")
	}
}

func fill(t *testing.T, c *Cache, i int, now time.Time) *dns.Msg {
	t.Helper()
	q := query(fmt.Sprintf("host%d.example.com.", i), dns.TypeA, false)
	if !c.Put(q, reply(t, q, dns.RcodeSuccess, []string{fmt.Sprintf("host%d.example.com. 300 IN A 192.0.2.1", i)}, nil, nil), now) {
		t.Fatalf("Put %d refused", i)
	}
	return q
}

// TestByteBound checks that the cache never holds more than its byte
// budget and evicts the least recently used entry first.
func TestByteBound(t *testing.T) {
	const budget = 4096
	c := New(Config{MaxBytes: budget})
	first := fill(t, c, 0, t0)
	second := fill(t, c, 1, t0)
	for i := 2; i < 200; i++ {
		// Keep the first entry in use.
		if _, ok := c.Get(first, t0); !ok {
			t.Fatalf("the most recently used entry was evicted at %d", i)
		}
		fill(t, c, i, t0)
		if b := c.Bytes(); b > budget {
			t.Fatalf("after %d entries, %d bytes over the budget %d", i+1, b, budget)
		}
	}
	if _, ok := c.Get(second, t0); ok {
		t.Error("the least recently used entry survived 200 puts")
	}
	if n := c.Len(); n < 2 || n > 199 {
		t.Errorf("Len %d", n)
	}
	// An answer bigger than the whole budget is not cached.
	q := query("big.example.com.", dns.TypeTXT, false)
	var txt []string
	for range 40 {
		txt = append(txt, `big.example.com. 300 IN TXT "`+fmt.Sprintf("%0200d", 0)+`"`)
	}
	if c.Put(q, reply(t, q, dns.RcodeSuccess, txt, nil, nil), t0) {
		t.Error("an answer over the budget was cached")
	}
	if b := c.Bytes(); b > budget {
		t.Errorf("%d bytes over the budget %d", b, budget)
	}
}

// TestEntryBound checks the entry budget and the replacement of a key.
func TestEntryBound(t *testing.T) {
	c := New(Config{MaxEntries: 3})
	for i := range 10 {
		fill(t, c, i, t0)
		if n := c.Len(); n > 3 {
			t.Fatalf("%d entries over the bound 3", n)
		}
	}
	bytes := c.Bytes()
	fill(t, c, 9, t0.Add(time.Second)) // replaces, not adds
	if c.Len() != 3 || c.Bytes() != bytes {
		t.Errorf("replacing a key: Len %d Bytes %d, want 3 and %d", c.Len(), c.Bytes(), bytes)
	}
	for i, want := range map[int]bool{6: false, 7: true, 8: true, 9: true} {
		q := query(fmt.Sprintf("host%d.example.com.", i), dns.TypeA, false)
		if _, ok := c.Get(q, t0.Add(time.Second)); ok != want {
			t.Errorf("host%d present %v, want %v", i, ok, want)
		}
	}
}

// TestPrefetch checks that popular entries are listed once in the last
// fraction of their lifetime and again after a fresh Put.
func TestPrefetch(t *testing.T) {
	c := New(Config{})
	popular := fill(t, c, 0, t0)
	rare := fill(t, c, 1, t0)
	for range 3 {
		c.Get(popular, t0.Add(time.Second))
	}
	c.Get(rare, t0.Add(time.Second))
	if keys := c.Prefetch(t0.Add(269*time.Second), 3, 0.1); len(keys) != 0 {
		t.Errorf("31 s of 300 left: prefetch %v, want none", keys)
	}
	if keys := c.Prefetch(t0.Add(271*time.Second), 4, 0.1); len(keys) != 0 {
		t.Errorf("3 hits, minimum 4: prefetch %v, want none", keys)
	}
	keys := c.Prefetch(t0.Add(271*time.Second), 3, 0.1)
	want, _ := KeyOf(popular)
	if len(keys) != 1 || keys[0] != want {
		t.Fatalf("prefetch %v, want [%v]", keys, want)
	}
	if again := c.Prefetch(t0.Add(272*time.Second), 3, 0.1); len(again) != 0 {
		t.Errorf("listed twice: %v", again)
	}
	// The session asks again and puts the fresh answer: hits are kept,
	// and the entry is listed again near its new expiry.
	if k, ok := KeyOf(keys[0].Query()); !ok || k != keys[0] {
		t.Errorf("the prefetch query's key %v, want %v", k, keys[0])
	}
	pq := keys[0].Query()
	if pq.Question[0].Name != "host0.example.com." || pq.Question[0].Qtype != dns.TypeA {
		t.Fatalf("prefetch query %v", pq.Question)
	}
	fill(t, c, 0, t0.Add(275*time.Second))
	if keys := c.Prefetch(t0.Add(280*time.Second), 3, 0.1); len(keys) != 0 {
		t.Errorf("fresh entry listed: %v", keys)
	}
	if keys := c.Prefetch(t0.Add(546*time.Second), 3, 0.1); len(keys) != 1 {
		t.Errorf("refreshed entry near expiry: prefetch %v, want it", keys)
	}
	// Expired entries are never listed, and are dropped.
	if keys := c.Prefetch(t0.Add(time.Hour), 0, 1); len(keys) != 0 || c.Len() != 0 {
		t.Errorf("after expiry: prefetch %v, Len %d", keys, c.Len())
	}
}

// FuzzCache puts arbitrary packed answers to arbitrary packed queries and
// gets them back: never a panic, never over the bound, never a record
// served past its entry's lifetime.
func FuzzCache(f *testing.F) {
	q := query("www.example.com.", dns.TypeA, true)
	for _, m := range []*dns.Msg{
		reply(f, q, dns.RcodeSuccess, []string{"www.example.com. 300 IN A 192.0.2.1"}, nil, nil),
		reply(f, q, dns.RcodeNameError, nil, []string{soa(3600, 60)}, nil),
		reply(f, q, dns.RcodeSuccess, nil, []string{soa(60, 3600)}, nil),
	} {
		qp, _ := q.Pack()
		mp, _ := m.Pack()
		f.Add(qp, mp, uint16(30))
	}
	f.Fuzz(func(t *testing.T, qb, rb []byte, secs uint16) {
		const budget = 2048
		c := New(Config{MaxBytes: budget, MaxEntries: 4, ServFailTTL: time.Minute})
		var q, r dns.Msg
		if q.Unpack(qb) != nil || r.Unpack(rb) != nil {
			return
		}
		// Put it under a few names so that the bounds are reached.
		for i := range 6 {
			qq := q.Copy()
			if len(qq.Question) == 1 && i > 0 {
				qq.Question[0].Name = fmt.Sprintf("n%d.%s", i, dns.Fqdn(qq.Question[0].Name))
				r.Question = []dns.Question{qq.Question[0]}
			}
			c.Put(qq, &r, t0)
			if c.Bytes() > budget || c.Len() > 4 {
				t.Fatalf("bound exceeded: %d bytes, %d entries", c.Bytes(), c.Len())
			}
			now := t0.Add(time.Duration(secs) * time.Second)
			got, ok := c.Get(qq, now)
			if !ok {
				continue
			}
			if got.Id != qq.Id || got.Question[0] != qq.Question[0] {
				t.Fatalf("reply ID %d question %v, want %d %v", got.Id, got.Question, qq.Id, qq.Question)
			}
			// No record is served with more than the highest TTL the
			// upstream gave, less the time spent in the cache.
			var highest uint32
			for _, rr := range append(append(r.Answer, r.Ns...), r.Extra...) {
				if rr.Header().Rrtype != dns.TypeOPT {
					highest = max(highest, rr.Header().Ttl)
				}
			}
			for _, rr := range append(append(got.Answer, got.Ns...), got.Extra...) {
				if uint64(rr.Header().Ttl)+uint64(secs) > uint64(highest) && rr.Header().Ttl > 0 {
					t.Fatalf("after %d s, served %v; highest TTL given %d", secs, rr, highest)
				}
			}
			if _, err := got.Pack(); err != nil {
				t.Fatalf("served reply does not pack: %v", err)
			}
			c.Prefetch(now, 0, 0.5)
		}
	})
}

// TestConcurrent puts, gets and prefetches from several goroutines (run
// with -race) and checks the bound holds at the end.
func TestConcurrent(t *testing.T) {
	c := New(Config{MaxBytes: 8192})
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 200 {
				q := query(fmt.Sprintf("host%d.example.com.", (g*200+i)%50), dns.TypeA, false)
				c.Put(q, reply(t, q, dns.RcodeSuccess, []string{q.Question[0].Name + " 300 IN A 192.0.2.1"}, nil, nil), t0)
				if got, ok := c.Get(q, t0.Add(time.Second)); ok && got.Id != q.Id {
					t.Errorf("ID %d, want %d", got.Id, q.Id)
				}
				c.Prefetch(t0.Add(280*time.Second), 1, 0.1)
			}
		}()
	}
	for range 4 {
		<-done
	}
	if c.Bytes() > 8192 {
		t.Errorf("%d bytes over the budget", c.Bytes())
	}
}

// TestKeyQuery checks that a key's query has that key.
func TestKeyQuery(t *testing.T) {
	for _, k := range []Key{
		{Name: "www.example.com.", Type: dns.TypeA, Class: dns.ClassINET},
		{Name: "www.example.com.", Type: dns.TypeAAAA, Class: dns.ClassINET, DO: true},
		{Name: "example.com.", Type: dns.TypeHTTPS, Class: dns.ClassCHAOS, DO: true, CD: true},
	} {
		if got, ok := KeyOf(k.Query()); !ok || got != k {
			t.Errorf("KeyOf(%v.Query()) = %v, %v", k, got, ok)
		}
	}
}

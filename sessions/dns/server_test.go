package dns

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/sessions/dns/upstream"
)

func TestForwarder(t *testing.T) {
	l := newLab(t)
	if l == nil {
		return
	}
	r := l.serve(&Server{PrefetchInterval: -1}, Config{Listen: []netip.Addr{serveAddr, serveAddr6, laterAddr}})

	t.Run("A and AAAA cached, ID and case kept", func(t *testing.T) {
		for _, typ := range []uint16{dns.TypeA, dns.TypeAAAA} {
			before := r.stats.Snapshot()
			var ttls []uint32
			for i, name := range []string{"A.Test.Example.", "a.TEST.example."} {
				q := query(name, typ, i == 0)
				q.Id = uint16(4242 + i)
				a := l.ask("udp", q)
				if a.Id != q.Id || a.Question[0].Name != name || a.Rcode != dns.RcodeSuccess || len(a.Answer) != 1 {
					t.Fatalf("reply %d to %s %s:\n%v", i, name, dns.TypeToString[typ], a)
				}
				if (a.IsEdns0() != nil) != (i == 0) {
					t.Errorf("reply %d: OPT %v, query had EDNS %v", i, a.IsEdns0(), i == 0)
				}
				if !a.RecursionAvailable {
					t.Errorf("reply %d without RA", i)
				}
				ttls = append(ttls, a.Answer[0].Header().Ttl)
			}
			after := r.stats.Snapshot()
			if n := l.upstreamQueries("a.test.example.", dns.TypeToString[typ]); n != 1 {
				t.Errorf("unbound got %d queries for a.test.example %s, want 1 (the second from the cache):\n%s", n, dns.TypeToString[typ], l.log)
			}
			if after.CacheHits-before.CacheHits != 1 || after.UpstreamQueries-before.UpstreamQueries != 1 {
				t.Errorf("counters: %+v -> %+v", before, after)
			}
			if ttls[1] > ttls[0] {
				t.Errorf("TTL grew: %v", ttls)
			}
		}
	})

	t.Run("TTL decreases in the cache", func(t *testing.T) {
		first := l.ask("udp", query("b.test.example.", dns.TypeA, true)).Answer[0].Header().Ttl
		waitFor(t, "a lower TTL", func() bool {
			return l.ask("udp", query("b.test.example.", dns.TypeA, true)).Answer[0].Header().Ttl < first
		})
		if n := l.upstreamQueries("b.test.example.", "A"); n != 1 {
			t.Errorf("unbound got %d queries for b.test.example A, want 1", n)
		}
	})

	t.Run("negative answers cached", func(t *testing.T) {
		for range 2 {
			a := l.ask("udp", query("nx.test.example.", dns.TypeA, true))
			if a.Rcode != dns.RcodeNameError || len(a.Ns) != 1 || a.Ns[0].Header().Rrtype != dns.TypeSOA {
				t.Fatalf("reply:\n%v", a)
			}
			a = l.ask("udp", query("c.test.example.", dns.TypeAAAA, true))
			if a.Rcode != dns.RcodeSuccess || len(a.Answer) != 0 || len(a.Ns) != 1 {
				t.Fatalf("NODATA reply:\n%v", a)
			}
		}
		if n, m := l.upstreamQueries("nx.test.example.", "A"), l.upstreamQueries("c.test.example.", "AAAA"); n != 1 || m != 1 {
			t.Errorf("unbound got %d NXDOMAIN and %d NODATA queries, want 1 each", n, m)
		}
	})

	t.Run("truncated over UDP, whole over TCP", func(t *testing.T) {
		before := r.stats.Snapshot()
		a := l.ask("udp", query("big.test.example.", dns.TypeTXT, false))
		if !a.Truncated || len(a.Answer) != 0 || a.Question[0].Name != "big.test.example." {
			t.Fatalf("UDP reply without EDNS:\n%v", a)
		}
		if r.stats.Snapshot().Truncated != before.Truncated+1 {
			t.Errorf("truncation not counted")
		}
		a = l.ask("tcp", query("big.test.example.", dns.TypeTXT, false))
		if a.Truncated || len(a.Answer) != 1 || len(a.Answer[0].(*dns.TXT).Txt) != 3 {
			t.Fatalf("TCP reply:\n%v", a)
		}
		a = l.ask("udp", query("big.test.example.", dns.TypeTXT, true))
		if a.Truncated || len(a.Answer) != 1 || a.IsEdns0() == nil || a.IsEdns0().UDPSize() != DefaultUDPSize {
			t.Fatalf("UDP reply with EDNS 1232:\n%v", a)
		}
	})

	t.Run("IPv6 listener", func(t *testing.T) {
		a, err := l.exchange("udp", netip.AddrPortFrom(serveAddr6, testPort), query("a.test.example.", dns.TypeA, false))
		if err != nil || len(a.Answer) != 1 {
			t.Fatalf("over IPv6: %v %v", a, err)
		}
	})

	t.Run("bound before its address exists", func(t *testing.T) {
		nstest.Run(t, "ip", "-n", l.ns, "addr", "add", laterAddr.String()+"/32", "dev", "lo")
		for _, network := range []string{"udp", "tcp"} {
			a, err := l.exchange(network, netip.AddrPortFrom(laterAddr, testPort), query("a.test.example.", dns.TypeA, false))
			if err != nil || len(a.Answer) != 1 {
				t.Fatalf("%s on %s: %v %v", network, laterAddr, a, err)
			}
		}
	})

	t.Run("silent on an address not given", func(t *testing.T) {
		for _, network := range []string{"udp", "tcp"} {
			if a, err := l.exchange(network, netip.AddrPortFrom(otherAddr, testPort), query("a.test.example.", dns.TypeA, false)); err == nil {
				t.Errorf("%s on %s answered: %v", network, otherAddr, a)
			}
		}
		out := nstest.In(t, l.ns, "ss", "-Hlnu", "sport", "=", ":5353")
		out += nstest.In(t, l.ns, "ss", "-Hlnt", "sport", "=", ":5353")
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.Contains(line, serveAddr.String()) && !strings.Contains(line, serveAddr6.String()) && !strings.Contains(line, laterAddr.String()) {
				t.Errorf("listening beyond the given addresses: %s", line)
			}
		}
	})

	t.Run("concurrent identical queries ask once", func(t *testing.T) {
		before := r.stats.Snapshot()
		const n = 20
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if a := l.ask("udp", query("www.other.example.", dns.TypeA, true)); len(a.Answer) != 1 {
					t.Errorf("reply: %v", a)
				}
			})
		}
		wg.Wait()
		after := r.stats.Snapshot()
		if got := l.upstreamQueries("www.other.example.", "A"); got != 1 {
			t.Errorf("unbound got %d queries, want 1", got)
		}
		if hits, co := after.CacheHits-before.CacheHits, after.Coalesced-before.Coalesced; hits+co != n-1 {
			t.Errorf("%d hits and %d coalesced of %d queries, want %d together", hits, co, n, n-1)
		}
	})

	t.Run("pipelined TCP queries on one connection", func(t *testing.T) {
		nstest.Do(t, l.ns, func() error {
			c, err := net.Dial("tcp", netip.AddrPortFrom(serveAddr, testPort).String())
			if err != nil {
				return err
			}
			defer c.Close()
			c2 := &dns.Conn{Conn: c}
			names := []string{"a.test.example.", "b.test.example.", "c.test.example.", "svc.test.example.", "nx2.test.example."}
			for i, n := range names {
				q := query(n, dns.TypeA, false)
				q.Id = uint16(100 + i)
				if err := c2.WriteMsg(q); err != nil {
					return err
				}
			}
			var ids []uint16
			for range names {
				a, err := c2.ReadMsg()
				if err != nil {
					return err
				}
				if a.Question[0].Name != names[a.Id-100] {
					t.Errorf("reply %d for %s", a.Id, a.Question[0].Name)
				}
				ids = append(ids, a.Id)
			}
			slices.Sort(ids)
			if !slices.Equal(ids, []uint16{100, 101, 102, 103, 104}) {
				t.Errorf("replies %v", ids)
			}
			return nil
		})
	})

	t.Run("status", func(t *testing.T) {
		waitFor(t, "a status detail with the queries", func() bool {
			return strings.Contains(r.status(), "% from cache") && strings.Contains(r.status(), "10.53.0.2, fd53::2, 10.53.0.4 port 5353")
		})
		t.Log(r.status())
	})
}

func TestServFailWhenUpstreamsFail(t *testing.T) {
	l := newLab(t)
	if l == nil {
		return
	}
	r := l.serve(&Server{}, Config{Upstreams: []upstream.Resolver{{Name: "dead", Addr: netip.AddrPortFrom(deadAddr, 53)}}})
	a := l.ask("udp", query("a.test.example.", dns.TypeA, true))
	if a.Rcode != dns.RcodeServerFailure || a.Question[0].Name != "a.test.example." || a.IsEdns0() == nil {
		t.Fatalf("reply:\n%v", a)
	}
	if st := r.stats.Snapshot(); st.UpstreamFailures != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestAAAAPolicy(t *testing.T) {
	l := newLab(t)
	if l == nil {
		return
	}
	srv := &Server{}
	r := l.serve(srv, Config{})
	aaaa := func(name string) int {
		t.Helper()
		a := l.ask("udp", query(name, dns.TypeAAAA, true))
		if a.Rcode != dns.RcodeSuccess {
			t.Fatalf("reply:\n%v", a)
		}
		return len(a.Answer)
	}
	v6hint := func() (v4, v6 bool) {
		t.Helper()
		a := l.ask("udp", query("svc.test.example.", dns.TypeHTTPS, true))
		if len(a.Answer) != 1 {
			t.Fatalf("HTTPS reply:\n%v", a)
		}
		for _, kv := range a.Answer[0].(*dns.HTTPS).Value {
			switch kv.(type) {
			case *dns.SVCBIPv4Hint:
				v4 = true
			case *dns.SVCBIPv6Hint:
				v6 = true
			}
		}
		return v4, v6
	}
	if aaaa("a.test.example.") != 1 || aaaa("b.test.example.") != 1 {
		t.Fatal("keep: AAAA answers missing")
	}
	if v4, v6 := v6hint(); !v4 || !v6 {
		t.Fatalf("keep: hints %v %v", v4, v6)
	}

	if err := srv.Update(labConfig(Config{AAAA: "keep", FilterAAAA: []string{"a.test.example"}})); err != nil {
		t.Fatal(err)
	}
	if aaaa("a.test.example.") != 0 || aaaa("b.test.example.") != 1 {
		t.Error("filterAAAA [a.test.example]: a kept or b filtered")
	}
	if v4, v6 := v6hint(); !v4 || !v6 {
		t.Errorf("filterAAAA [a.test.example]: svc's hints %v %v", v4, v6)
	}

	if err := srv.Update(labConfig(Config{AAAA: "filter"})); err != nil {
		t.Fatal(err)
	}
	if aaaa("a.test.example.") != 0 || aaaa("b.test.example.") != 0 {
		t.Error("filter: AAAA answers left")
	}
	if v4, v6 := v6hint(); !v4 || v6 {
		t.Errorf("filter: hints v4 %v v6 %v, want the ipv6hint alone stripped", v4, v6)
	}
	if a := l.ask("udp", query("a.test.example.", dns.TypeA, true)); len(a.Answer) != 1 {
		t.Errorf("filter: A answer gone:\n%v", a)
	}
	// The policy applies to cached answers: each name was asked once.
	for _, n := range []string{"a.test.example.", "b.test.example."} {
		if got := l.upstreamQueries(n, "AAAA"); got != 1 {
			t.Errorf("unbound got %d AAAA queries for %s, want 1", got, n)
		}
	}
	if st := r.stats.Snapshot(); st.Filtered < 4 {
		t.Errorf("filtered %d answers, want at least 4", st.Filtered)
	}

	if err := srv.Update(labConfig(Config{Listen: []netip.Addr{serveAddr}})); err == nil {
		t.Error("a change of listen addresses updated in place")
	}
}

// nftSet lists the elements of set in braid's table with their timeouts
// in seconds.
func nftSet(t *testing.T, ns, set string) map[string]int {
	t.Helper()
	out := nstest.In(t, ns, "nft", "-j", "list", "set", "inet", "braid", set)
	var doc struct {
		Nftables []struct {
			Set *struct {
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, o := range doc.Nftables {
		if o.Set == nil {
			continue
		}
		for _, raw := range o.Set.Elem {
			var e struct {
				Elem struct {
					Val     string `json:"val"`
					Timeout int    `json:"timeout"`
				} `json:"elem"`
			}
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatalf("element %s: %v", raw, err)
			}
			got[e.Elem.Val] = e.Elem.Timeout
		}
	}
	return got
}

func TestEgress(t *testing.T) {
	l := newLab(t)
	if l == nil {
		return
	}
	nstest.NftLoad(t, l.ns, `table inet braid {
	set egress_wan4 { type ipv4_addr; flags timeout; }
	set egress_wan6 { type ipv6_addr; flags timeout; }
}`)
	cfg := Config{Egress: []Egress{{Uplink: "wan", Domains: []string{"test.example"}, Set4: "egress_wan4", Set6: "egress_wan6"}}}
	srv := &Server{}
	r := l.serve(srv, cfg)

	// Each element is in its set when the answer arrives: no waiting.
	l.ask("udp", query("a.test.example.", dns.TypeA, true))
	if got := nftSet(t, l.ns, "egress_wan4"); got["192.0.2.10"] < 590 {
		t.Fatalf("egress_wan4 after the A answer: %v", got)
	}
	l.ask("tcp", query("a.test.example.", dns.TypeAAAA, true))
	if got := nftSet(t, l.ns, "egress_wan6"); got["2001:db8::10"] < 590 {
		t.Fatalf("egress_wan6 after the AAAA answer: %v", got)
	}
	l.ask("udp", query("svc.test.example.", dns.TypeHTTPS, true))
	if got4, got6 := nftSet(t, l.ns, "egress_wan4"), nftSet(t, l.ns, "egress_wan6"); got4["192.0.2.20"] == 0 || got6["2001:db8::20"] == 0 {
		t.Fatalf("HTTPS hints not in the sets: %v %v", got4, got6)
	}
	l.ask("udp", query("www.other.example.", dns.TypeA, true))
	if got := nftSet(t, l.ns, "egress_wan4"); len(got) != 2 {
		t.Errorf("a name of no route reached the set: %v", got)
	}

	// A cache hit commits again: the element came back after it was
	// deleted.
	nstest.In(t, l.ns, "nft", "delete", "element", "inet", "braid", "egress_wan4", "{ 192.0.2.10 }")
	l.ask("udp", query("a.test.example.", dns.TypeA, true))
	if got := nftSet(t, l.ns, "egress_wan4"); got["192.0.2.10"] == 0 {
		t.Errorf("cache hit did not renew the element: %v", got)
	}
	if st := r.stats.Snapshot(); st.EgressElements != 5 || st.EgressFailures != 0 {
		t.Errorf("stats %+v", st)
	}

	// A set that cannot take the element: answered anyway, counted.
	cfg.Egress[0].Set4 = "egress_gone4"
	if err := srv.Update(labConfig(cfg)); err != nil {
		t.Fatal(err)
	}
	if a := l.ask("udp", query("b.test.example.", dns.TypeA, true)); len(a.Answer) != 1 {
		t.Fatalf("no answer when the element failed:\n%v", a)
	}
	if st := r.stats.Snapshot(); st.EgressFailures != 1 {
		t.Errorf("stats %+v", st)
	}
}

// rawExchangeFrom sends q over UDP to the forwarder from the calling
// thread's namespace and returns the reply, or nil when none comes before
// the deadline.
func rawExchangeFrom(l *lab, q *dns.Msg) []byte {
	raw, err := q.Pack()
	if err != nil {
		l.t.Fatal(err)
	}
	c, err := net.Dial("udp", netip.AddrPortFrom(serveAddr, testPort).String())
	if err != nil {
		l.t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(raw); err != nil {
		l.t.Fatal(err)
	}
	c.SetReadDeadline(deadline())
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// rawExchange sends payload over UDP to the forwarder and returns the
// reply, or nil when none comes before ctx ends.
func rawExchange(t *testing.T, l *lab, payload []byte) []byte {
	t.Helper()
	var out []byte
	nstest.Do(t, l.ns, func() error {
		c, err := net.Dial("udp", netip.AddrPortFrom(serveAddr, testPort).String())
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write(payload); err != nil {
			return err
		}
		c.SetReadDeadline(deadline())
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			return nil
		}
		out = buf[:n]
		return nil
	})
	return out
}

func TestMalformedQueries(t *testing.T) {
	l := newLab(t)
	if l == nil {
		return
	}
	r := l.serve(&Server{}, Config{})
	two := query("a.test.example.", dns.TypeA, false)
	two.Question = append(two.Question, two.Question[0])
	twoRaw, _ := two.Pack()
	notify := query("a.test.example.", dns.TypeSOA, false)
	notify.Opcode = dns.OpcodeNotify
	notifyRaw, _ := notify.Pack()
	badvers := query("a.test.example.", dns.TypeA, true)
	badvers.IsEdns0().SetVersion(1)
	badversRaw, _ := badvers.Pack()
	garbage := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff}

	for _, tc := range []struct {
		name  string
		raw   []byte
		rcode int
	}{
		{"two questions", twoRaw, dns.RcodeFormatError},
		{"notify", notifyRaw, dns.RcodeNotImplemented},
		{"EDNS version 1", badversRaw, dns.RcodeBadVers},
		{"garbage question", garbage, dns.RcodeFormatError},
	} {
		out := rawExchange(t, l, tc.raw)
		a := new(dns.Msg)
		if err := a.Unpack(out); err != nil {
			t.Errorf("%s: reply %x: %v", tc.name, out, err)
			continue
		}
		if a.Rcode != tc.rcode || a.Id != binary.BigEndian.Uint16(tc.raw) || !a.Response {
			t.Errorf("%s: reply\n%v", tc.name, a)
		}
	}
	// A response and a runt get no reply; the forwarder still answers after.
	resp := query("a.test.example.", dns.TypeA, false)
	resp.Response = true
	respRaw, _ := resp.Pack()
	for _, raw := range [][]byte{respRaw, {1, 2, 3}} {
		nstest.Do(t, l.ns, func() error {
			c, err := net.Dial("udp", netip.AddrPortFrom(serveAddr, testPort).String())
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write(raw)
			return err
		})
	}
	waitFor(t, "the dropped queries counted", func() bool { return r.stats.Snapshot().Malformed == 6 })
	if a := l.ask("udp", query("a.test.example.", dns.TypeA, false)); len(a.Answer) != 1 {
		t.Fatalf("reply after malformed queries:\n%v", a)
	}
}

func TestPrefetch(t *testing.T) {
	l := newLab(t)
	if l == nil {
		return
	}
	srv := &Server{PrefetchInterval: -1}
	l.serve(srv, Config{})
	for range 3 {
		l.ask("udp", query("c.test.example.", dns.TypeA, false))
	}
	srv.mu.Lock()
	e := srv.cur
	srv.mu.Unlock()
	// 280 s into its 300, in the last tenth of its lifetime (for as long
	// as the asks above took less than 20 s), the popular answer is asked
	// again.
	e.prefetch(context.Background(), nowPlus(280), DefaultPrefetchHits, prefetchLimit, prefetchWorkers)
	if got := l.upstreamQueries("c.test.example.", "A"); got != 2 {
		t.Fatalf("unbound got %d queries for c.test.example, want 2 (the prefetch)", got)
	}
	if st := e.stats.Snapshot(); st.Prefetches != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestTCPBounds(t *testing.T) {
	l := newLab(t)
	if l == nil {
		return
	}
	r := l.serve(&Server{MaxTCPConnsPerClient: 2, TCPIdle: 200 * time.Millisecond}, Config{})
	nstest.Do(t, l.ns, func() error {
		addr := netip.AddrPortFrom(serveAddr, testPort).String()
		var conns []*dns.Conn
		for range 3 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			defer c.Close()
			conns = append(conns, &dns.Conn{Conn: c})
		}
		// The first two are served; the third, beyond the client's
		// bound, is closed without an answer.
		for i, c := range conns {
			if err := c.WriteMsg(query("a.test.example.", dns.TypeA, false)); err != nil && i < 2 {
				return err
			}
			c.SetReadDeadline(deadline())
			a, err := c.ReadMsg()
			switch {
			case i < 2 && (err != nil || len(a.Answer) != 1):
				t.Errorf("connection %d: %v %v", i, a, err)
			case i == 2 && err == nil:
				t.Errorf("connection beyond the bound answered: %v", a)
			}
		}
		// An idle connection is closed by the server: the read ends
		// with EOF, not with the client's own deadline.
		c := conns[0]
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.ReadMsg(); !errors.Is(err, io.EOF) {
			t.Errorf("idle connection: read %v, want EOF", err)
		}
		return nil
	})
	if st := r.stats.Snapshot(); st.Refused != 1 {
		t.Errorf("stats %+v, want 1 refused", st)
	}
}

func TestFallback(t *testing.T) {
	l := newLab(t)
	if l == nil {
		return
	}
	r := l.serve(&Server{}, Config{
		Upstreams: []upstream.Resolver{{Name: "dead", Addr: netip.AddrPortFrom(deadAddr, 53)}},
		Fallback:  []upstream.Resolver{{Name: "uplink:wan", Addr: netip.AddrPortFrom(upstreamAddr, 53)}},
	})
	if a := l.ask("udp", query("a.test.example.", dns.TypeA, true)); len(a.Answer) != 1 {
		t.Fatalf("reply:\n%v", a)
	}
	waitFor(t, "the status marking the fallback in use", func() bool {
		st := r.status()
		i := strings.Index(st, "| fallback: uplink:wan "+netip.AddrPortFrom(upstreamAddr, 53).String()+" up")
		return i >= 0 && strings.HasSuffix(st, ", in use") && !strings.Contains(st[:i], "in use")
	})
	var inUse []string
	for _, u := range r.srv.Upstreams() {
		if u.InUse {
			inUse = append(inUse, u.Name)
		}
	}
	if !slices.Equal(inUse, []string{"uplink:wan"}) {
		t.Errorf("in use: %v", inUse)
	}
}

func TestUDPInFlightBound(t *testing.T) {
	l := newLab(t)
	if l == nil {
		return
	}
	// The upstream never answers (its queries dropped), and the pool
	// waits long for it: the first query holds the client's one slot.
	nstest.NftLoad(t, l.ns, `table inet drop53 {
	chain in { type filter hook input priority 0; ip daddr `+upstreamAddr.String()+` udp dport 53 drop; }
}`)
	srv := &Server{MaxInFlightPerClient: 1, Timeout: time.Minute, NewAsker: func(cfg Config) (Asker, error) {
		return upstream.New(upstream.Config{Upstreams: cfg.Upstreams, Timeout: time.Minute}), nil
	}}
	r := l.serve(srv, Config{})
	first := make(chan *dns.Msg, 1)
	go func() {
		a, _ := l.exchange("udp", netip.AddrPortFrom(serveAddr, testPort), query("a.test.example.", dns.TypeA, false))
		first <- a
	}()
	waitFor(t, "the first query upstream", func() bool { return r.stats.Snapshot().UpstreamQueries == 1 })
	// A second query from the same client, beyond its bound, is dropped.
	var got []byte
	nstest.Do(t, l.ns, func() error {
		got = rawExchangeFrom(l, query("b.test.example.", dns.TypeA, false))
		return nil
	})
	if got != nil {
		t.Errorf("a query beyond the client's bound was answered: %x", got)
	}
	if st := r.stats.Snapshot(); st.Refused != 1 || st.CacheMisses != 1 {
		t.Errorf("stats %+v, want 1 refused and 1 miss", st)
	}
	r.cancel() // the first query ends with the session
	<-first
}

package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/braid-router/braid/drivers/nftables"
	"github.com/braid-router/braid/sessions/dns/cache"
	"github.com/braid-router/braid/sessions/dns/policy"
)

// Asker asks the upstream resolvers a query and returns their answer: the
// upstream pool (sessions/dns/upstream) in braid, anything that forwards
// in tests. Ask is called concurrently. q belongs to the Asker (it may
// set the ID); the answer is the caller's and is not modified.
type Asker interface {
	Ask(ctx context.Context, q *dns.Msg) (*dns.Msg, error)
}

// Sets commits egress set elements to the kernel: Add returns once the
// kernel has them (an element already there has its timeout renewed).
// Add is called concurrently. *nftables.Elements is one.
type Sets interface {
	Add(ctx context.Context, es []nftables.TimedElement) error
}

// rules is what a configuration decides about answers, swapped whole by
// Update.
type rules struct {
	asker  Asker
	filter policy.AAAAFilter
	egress *policy.Egress
	// sets maps an uplink to its IPv4 and IPv6 egress sets.
	sets map[string][2]string
	// writer commits the elements; nil: they cannot be.
	writer Sets
}

// newRules is cfg's answer policy, asking asker, committing egress
// elements with writer.
func newRules(cfg Config, asker Asker, writer Sets) (*rules, error) {
	filter, err := policy.NewAAAAFilter(cfg.AAAA, cfg.FilterAAAA)
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	var routes []policy.Route
	sets := map[string][2]string{}
	for _, e := range cfg.Egress {
		routes = append(routes, policy.Route{Uplink: e.Uplink, Domains: e.Domains})
		sets[e.Uplink] = [2]string{e.Set4, e.Set6}
	}
	egress, err := policy.NewEgress(routes)
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	return &rules{asker: asker, filter: filter, egress: egress, sets: sets, writer: writer}, nil
}

// engine is the message path, from a query's bytes to its reply's,
// without sockets: the listeners hand it what they read, the fuzz target
// calls it directly.
type engine struct {
	ctx     context.Context // the server's: upstream queries outlive a client's patience
	cache   *cache.Cache
	stats   *Stats
	log     *slog.Logger
	udpSize int
	timeout time.Duration // of one upstream query
	now     func() time.Time

	rules atomic.Pointer[rules]

	mu    sync.Mutex
	calls map[cache.Key]*call // upstream queries in flight

	lastEgressLog atomic.Int64 // unix nanoseconds of the last egress failure logged
}

// call is an upstream query in flight, which identical queries wait for.
type call struct {
	done chan struct{}
	resp *dns.Msg // shared by every waiter: read only
	err  error
}

// Egress commit bounds: how long an answer waits for its elements, and
// how often a failure to add them is logged.
const (
	egressTimeout  = time.Second
	egressLogEvery = 10 * time.Second
)

// errMismatch is an upstream answer to another question.
var errMismatch = errors.New("the upstream answered another question")

// answer is the reply to the query raw, read over UDP when udp is set:
// nil when there is none to send (no DNS header, or a response).
func (e *engine) answer(ctx context.Context, raw []byte, udp bool) []byte {
	if len(raw) < 12 {
		e.stats.Malformed.Add(1)
		return nil
	}
	if raw[2]&0x80 != 0 {
		// A response: answering it could loop between two servers.
		e.stats.Malformed.Add(1)
		return nil
	}
	q := new(dns.Msg)
	if err := q.Unpack(raw); err != nil {
		e.stats.Malformed.Add(1)
		return formErr(raw)
	}
	if q.Opcode != dns.OpcodeQuery {
		e.stats.Malformed.Add(1)
		return e.rcode(q, dns.RcodeNotImplemented, nil)
	}
	if len(q.Question) != 1 {
		e.stats.Malformed.Add(1)
		return e.rcode(q, dns.RcodeFormatError, nil)
	}
	opt, ok := clientOPT(q)
	if !ok {
		e.stats.Malformed.Add(1)
		return e.rcode(q, dns.RcodeFormatError, nil)
	}
	if opt != nil && opt.Version() != 0 {
		// RFC 6891 section 6.1.3.
		e.stats.Malformed.Add(1)
		return e.rcode(q, dns.RcodeBadVers, opt)
	}
	switch q.Question[0].Qtype {
	case dns.TypeAXFR, dns.TypeIXFR, dns.TypeOPT:
		// Zone transfers are not a forwarder's job; OPT is no question.
		return e.rcode(q, dns.RcodeRefused, opt)
	}

	m, hit := e.cache.Get(q, e.now())
	if hit {
		e.stats.CacheHits.Add(1)
	} else {
		e.stats.CacheMisses.Add(1)
		key, _ := cache.KeyOf(q)
		resp, err := e.lookup(ctx, key)
		if err != nil {
			return e.rcode(q, dns.RcodeServerFailure, opt)
		}
		m = shallow(resp)
	}
	return e.finish(ctx, q, opt, m, udp)
}

// clientOPT is q's OPT record, nil without one; false when q has more
// than one (RFC 6891 section 6.1.1: FORMERR).
func clientOPT(q *dns.Msg) (*dns.OPT, bool) {
	var opt *dns.OPT
	for _, rr := range q.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opt != nil {
				return nil, false
			}
			opt = o
		}
	}
	return opt, true
}

// shallow copies m's header and section slices (without its OPT record),
// sharing the records: the policy replaces the records it changes rather
// than changing them, so m (an answer the cache or other waiters share)
// stays intact.
func shallow(m *dns.Msg) *dns.Msg {
	out := &dns.Msg{MsgHdr: m.MsgHdr}
	out.Answer = slices.Clone(m.Answer)
	out.Ns = slices.Clone(m.Ns)
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			out.Extra = append(out.Extra, rr)
		}
	}
	return out
}

// finish makes m, an answer to q from the cache or an upstream, the reply
// to q: the client's ID, question and flags, the egress elements
// committed, the AAAA policy applied, braid's OPT when q had one, and
// over UDP cut to the client's size.
func (e *engine) finish(ctx context.Context, q *dns.Msg, opt *dns.OPT, m *dns.Msg, udp bool) []byte {
	do := opt != nil && opt.Do()
	m.Id = q.Id
	m.Question = []dns.Question{q.Question[0]}
	m.Response = true
	m.Opcode = dns.OpcodeQuery
	m.Authoritative = false
	m.RecursionDesired = q.RecursionDesired
	m.RecursionAvailable = true
	m.CheckingDisabled = q.CheckingDisabled
	m.Zero = false
	if !q.AuthenticatedData && !do {
		m.AuthenticatedData = false // RFC 6840 section 5.8
	}
	r := e.rules.Load()
	e.commitEgress(ctx, r, m) // before the policy strips hints
	if r.filter.Apply(m) {
		e.stats.Filtered.Add(1)
	}
	return e.pack(m, opt, udp)
}

// pack packs reply m, with braid's OPT when the query had one (opt), cut
// to the client's size over UDP; a reply that does not pack becomes
// SERVFAIL.
func (e *engine) pack(m *dns.Msg, opt *dns.OPT, udp bool) []byte {
	if opt != nil {
		m.SetEdns0(uint16(e.udpSize), opt.Do())
	}
	if udp {
		limit := dns.MinMsgSize
		if opt != nil {
			limit = min(max(int(opt.UDPSize()), dns.MinMsgSize), e.udpSize)
		}
		tc := m.Truncated
		m.Truncate(limit)
		if m.Truncated && !tc {
			e.stats.Truncated.Add(1)
		}
	} else {
		m.Compress = true
	}
	out, err := m.Pack()
	if err != nil || len(out) > dns.MaxMsgSize {
		s := &dns.Msg{MsgHdr: m.MsgHdr, Question: m.Question}
		s.Rcode = dns.RcodeServerFailure
		s.Truncated = false
		if opt != nil {
			s.SetEdns0(uint16(e.udpSize), opt.Do())
		}
		if out, err = s.Pack(); err != nil {
			return nil
		}
	}
	return out
}

// rcode is the reply to q with rcode and nothing else.
func (e *engine) rcode(q *dns.Msg, rcode int, opt *dns.OPT) []byte {
	m := new(dns.Msg)
	m.SetRcode(q, rcode)
	if len(q.Question) > 1 {
		m.Question = nil
	}
	m.RecursionAvailable = true
	return e.pack(m, opt, false)
}

// formErr is the FORMERR reply to raw, a query whose header reads but not
// the rest: its ID, opcode and RD bit, no question.
func formErr(raw []byte) []byte {
	flags := binary.BigEndian.Uint16(raw[2:])
	m := new(dns.Msg)
	m.Id = binary.BigEndian.Uint16(raw)
	m.Response = true
	m.Opcode = int(flags>>11) & 0xf
	m.RecursionDesired = flags&0x100 != 0
	m.RecursionAvailable = true
	m.Rcode = dns.RcodeFormatError
	out, err := m.Pack()
	if err != nil {
		return nil
	}
	return out
}

// lookup is the upstream's answer for key: asked once for every identical
// query that arrives while it is asked. It returns when the answer is in
// or ctx ends.
func (e *engine) lookup(ctx context.Context, key cache.Key) (*dns.Msg, error) {
	e.mu.Lock()
	c, ok := e.calls[key]
	if ok {
		e.stats.Coalesced.Add(1)
	} else {
		c = &call{done: make(chan struct{})}
		e.calls[key] = c
		go func() {
			c.resp, c.err = e.ask(key)
			e.mu.Lock()
			delete(e.calls, key)
			e.mu.Unlock()
			close(c.done)
		}()
	}
	e.mu.Unlock()
	select {
	case <-c.done:
		return c.resp, c.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// ask asks the upstreams for key, with the server's context (not a
// client's: other clients may wait for the same answer), and caches the
// answer.
func (e *engine) ask(key cache.Key) (*dns.Msg, error) {
	r := e.rules.Load()
	q := new(dns.Msg)
	q.Id = dns.Id()
	q.RecursionDesired = true
	q.CheckingDisabled = key.CD
	q.Question = []dns.Question{{Name: key.Name, Qtype: key.Type, Qclass: key.Class}}
	q.SetEdns0(uint16(e.udpSize), key.DO)
	ctx, cancel := context.WithTimeout(e.ctx, e.timeout)
	defer cancel()
	e.stats.UpstreamQueries.Add(1)
	resp, err := r.asker.Ask(ctx, q.Copy())
	if err == nil {
		err = matches(resp, key)
	}
	if err == nil {
		resp, err = roundTrip(resp)
	}
	if err != nil {
		e.stats.UpstreamFailures.Add(1)
		e.log.Debug("no upstream answered", "name", key.Name, "type", dns.TypeToString[key.Type], "err", err)
		return nil, fmt.Errorf("ask %s %s: %w", key.Name, dns.TypeToString[key.Type], err)
	}
	e.cache.Put(q, resp, e.now())
	return resp, nil
}

// errUnpackable is an upstream answer that does not survive packing
// and parsing again.
var errUnpackable = errors.New("the upstream's answer does not pack into a message that parses")

// roundTrip is resp packed and parsed again: what the forwarder sends is
// then what it parsed. miekg/dns parses some malformed records (an SOA
// cut short) into records whose packed form no longer parses; such an
// answer is refused rather than passed on to the LAN or cached. It costs
// a pack and a parse per upstream answer, none per cached one.
func roundTrip(resp *dns.Msg) (*dns.Msg, error) {
	raw, err := resp.Pack()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnpackable, err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(raw); err != nil {
		return nil, fmt.Errorf("%w: %w", errUnpackable, err)
	}
	return m, nil
}

// matches checks that resp answers key's question.
func matches(resp *dns.Msg, key cache.Key) error {
	if resp == nil || !resp.Response || len(resp.Question) != 1 {
		return errMismatch
	}
	if q := resp.Question[0]; q.Qtype != key.Type || q.Qclass != key.Class || dns.CanonicalName(q.Name) != key.Name {
		return errMismatch
	}
	return nil
}

// commitEgress commits the egress elements answer m calls for to their
// sets, before m is sent. A failure is counted and logged (at most every
// egressLogEvery): the answer goes out anyway, for DNS must never be the
// reason the LAN is offline.
func (e *engine) commitEgress(ctx context.Context, r *rules, m *dns.Msg) {
	els := r.egress.Elements(m)
	if len(els) == 0 {
		return
	}
	out := make([]nftables.TimedElement, 0, len(els))
	for _, el := range els {
		sets := r.sets[el.Uplink]
		set := sets[1]
		if el.Addr.Is4() {
			set = sets[0]
		}
		if set != "" {
			out = append(out, nftables.TimedElement{Set: set, Addr: el.Addr, Timeout: el.Timeout})
		}
	}
	if len(out) == 0 {
		return
	}
	err := errors.New("no egress set writer")
	if r.writer != nil {
		ctx, cancel := context.WithTimeout(ctx, egressTimeout)
		err = r.writer.Add(ctx, out)
		cancel()
	}
	if err == nil {
		e.stats.EgressElements.Add(uint64(len(out)))
		return
	}
	e.stats.EgressFailures.Add(1)
	now := time.Now().UnixNano()
	last := e.lastEgressLog.Load()
	if now-last >= int64(egressLogEvery) && e.lastEgressLog.CompareAndSwap(last, now) {
		e.log.Warn("egress elements not committed; answering anyway", "name", m.Question[0].Name,
			"elements", len(out), "failures", e.stats.EgressFailures.Load(), "err", err)
	}
}

// prefetch asks again, before they expire, the popular answers the cache
// lists at now, at most limit of them, workers at a time.
func (e *engine) prefetch(ctx context.Context, now time.Time, minHits, limit, workers int) {
	keys := e.cache.Prefetch(now, minHits, prefetchFraction)
	if len(keys) > limit {
		keys = keys[:limit]
	}
	var wg sync.WaitGroup
	work := make(chan cache.Key)
	for range min(workers, len(keys)) {
		wg.Go(func() {
			for k := range work {
				e.stats.Prefetches.Add(1)
				e.lookup(ctx, k)
			}
		})
	}
	for _, k := range keys {
		select {
		case work <- k:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
}

// prefetchFraction: a popular answer is asked again in the last tenth of
// its lifetime.
const prefetchFraction = 0.1

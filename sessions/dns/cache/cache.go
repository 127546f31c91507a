// Package cache is the DNS forwarder's answer cache: pure, with no sockets
// and no clock of its own (every method takes the time as now).
//
// Answers are keyed by the question's lowercased name, its type and class,
// and the query's DNSSEC OK and Checking Disabled bits (Key). They are kept packed, so an entry's
// size is what it costs; the cache holds at most Config.MaxBytes of them
// and at most Config.MaxEntries, evicting the least recently used first.
//
// What is cached, and for how long:
//   - A positive answer (NOERROR with answer records): the lowest TTL of
//     its records (OPT aside), at most Config.MaxTTL.
//   - A negative answer, NXDOMAIN or NODATA (NOERROR without answer
//     records): only with an SOA in the authority section, for the lower
//     of the SOA record's TTL and its MINIMUM field (RFC 2308 section 5),
//     at most Config.MaxNegativeTTL and at most any of its records' TTLs
//     (a CNAME before an NXDOMAIN, say). Without an SOA it is not cached
//     (RFC 2308 section 5; a referral, NOERROR with NS and no SOA, is not
//     an answer and is not cached either).
//   - SERVFAIL: only when Config.ServFailTTL is set, for that long and
//     never more than 5 minutes (RFC 2308 section 7.1). The default is not
//     to cache it: the forwarder retries the next upstream instead.
//   - Never: truncated (TC) answers, answers with a TTL of 0, other rcodes
//     (REFUSED, FORMERR, NOTIMP, ...), opcodes other than QUERY, and
//     answers whose question does not match the query's.
//
// Get serves an entry only before it expires, its records' TTLs lowered
// by the whole seconds it has spent in the cache, with the client's ID and
// its question as the client wrote it (the name's case preserved), not
// authoritative. The
// upstream's OPT record is not kept: the forwarder adds its own EDNS to
// the reply, sized for its client.
//
// Prefetch lists the popular entries (hit at least a given number of
// times) within a fraction of their TTL of expiry, each once, so that the
// session can ask again and Put the fresh answer before the old one
// expires.
//
// A Cache is safe for concurrent use.
package cache

import (
	"container/list"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Defaults for the zero fields of Config.
const (
	DefaultMaxBytes       = 16 << 20
	DefaultMaxTTL         = 24 * time.Hour
	DefaultMaxNegativeTTL = 3 * time.Hour // RFC 2308 section 5's suggestion
	maxServFailTTL        = 5 * time.Minute
	// entryOverhead is an estimate of an entry's bookkeeping beyond its
	// packed message and its name: the entry, its list element and its
	// map slot.
	entryOverhead = 160
)

// Config bounds a Cache.
type Config struct {
	// MaxBytes is the memory budget: packed messages, names and
	// bookkeeping. Zero means DefaultMaxBytes.
	MaxBytes int
	// MaxEntries bounds the number of entries. Zero means no bound but
	// MaxBytes.
	MaxEntries int
	// MaxTTL caps a positive answer's time in the cache. Zero means
	// DefaultMaxTTL.
	MaxTTL time.Duration
	// MaxNegativeTTL caps a negative answer's. Zero means
	// DefaultMaxNegativeTTL.
	MaxNegativeTTL time.Duration
	// ServFailTTL is how long a SERVFAIL is cached; zero (the default)
	// means not at all. At most 5 minutes (RFC 2308 section 7.1).
	ServFailTTL time.Duration
}

// Key identifies a cached answer.
type Key struct {
	// Name is the question's name, lowercased and fully qualified.
	Name  string
	Type  uint16
	Class uint16
	// DO is the query's DNSSEC OK bit: answers with and without DNSSEC
	// records are cached apart.
	DO bool
	// CD is the query's Checking Disabled bit: an answer a validating
	// upstream gave without validating (RFC 4035 section 3.2.2) is never
	// served to a client that did not ask for that.
	CD bool
}

// KeyOf is the key of a query: false unless it has exactly one question.
func KeyOf(query *dns.Msg) (Key, bool) {
	if query == nil || len(query.Question) != 1 {
		return Key{}, false
	}
	q := query.Question[0]
	k := Key{Name: dns.CanonicalName(q.Name), Type: q.Qtype, Class: q.Qclass, CD: query.CheckingDisabled}
	if opt := query.IsEdns0(); opt != nil {
		k.DO = opt.Do()
	}
	return k, true
}

// Query is a query for the key (recursion desired, EDNS0 with its DO bit
// when set), for a prefetch; the caller sets the ID.
func (k Key) Query() *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(k.Name, k.Type)
	m.Question[0].Qclass = k.Class
	m.CheckingDisabled = k.CD
	if k.DO {
		m.SetEdns0(1232, true)
	}
	return m
}

type entry struct {
	key      Key
	packed   []byte // immutable once stored
	stored   time.Time
	expires  time.Time
	ttl      time.Duration
	size     int
	hits     int
	prefetch bool // listed by Prefetch since it was stored
	elem     *list.Element
}

// Cache is a bounded DNS answer cache. Make one with New.
type Cache struct {
	cfg Config

	mu      sync.Mutex
	entries map[Key]*entry
	lru     list.List // front: most recently used; values *entry
	bytes   int
}

// New is an empty cache bounded by cfg.
func New(cfg Config) *Cache {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	if cfg.MaxNegativeTTL <= 0 {
		cfg.MaxNegativeTTL = DefaultMaxNegativeTTL
	}
	if cfg.ServFailTTL > maxServFailTTL {
		cfg.ServFailTTL = maxServFailTTL
	}
	return &Cache{cfg: cfg, entries: make(map[Key]*entry)}
}

// Len is the number of entries, expired ones not yet removed included.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Bytes is the memory the entries are accounted for; never more than
// Config.MaxBytes.
func (c *Cache) Bytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// Put caches resp, the upstream's answer to query, received at now, if it
// may be cached (see the package doc); it says whether it did. A cached
// answer replaces the key's previous one, keeping its hit count. resp is
// not modified.
func (c *Cache) Put(query, resp *dns.Msg, now time.Time) bool {
	key, ok := KeyOf(query)
	if !ok || resp == nil || !resp.Response || resp.Truncated || resp.Opcode != dns.OpcodeQuery {
		return false
	}
	if len(resp.Question) != 1 {
		return false
	}
	if q := resp.Question[0]; q.Qtype != key.Type || q.Qclass != key.Class || dns.CanonicalName(q.Name) != key.Name {
		return false
	}
	ttl, ok := c.lifetime(resp)
	if !ok {
		return false
	}
	packed, ok := storable(resp, ttl)
	if !ok {
		return false
	}
	e := &entry{
		key:     key,
		packed:  packed,
		stored:  now,
		expires: now.Add(ttl),
		ttl:     ttl,
		size:    len(packed) + len(key.Name) + entryOverhead,
	}
	if e.size > c.cfg.MaxBytes {
		return false
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[key]; ok {
		e.hits = old.hits
		c.remove(old)
	}
	e.elem = c.lru.PushFront(e)
	c.entries[key] = e
	c.bytes += e.size
	for c.bytes > c.cfg.MaxBytes || (c.cfg.MaxEntries > 0 && len(c.entries) > c.cfg.MaxEntries) {
		c.remove(c.lru.Back().Value.(*entry))
	}
	return true
}

// lifetime is how long resp may be cached, or false if it may not.
func (c *Cache) lifetime(resp *dns.Msg) (time.Duration, bool) {
	switch resp.Rcode {
	case dns.RcodeServerFailure:
		return c.cfg.ServFailTTL, c.cfg.ServFailTTL > 0
	case dns.RcodeNameError:
		neg, ok := negativeTTL(resp, c.cfg.MaxNegativeTTL)
		ttl := min(neg, lowestTTL(resp, neg))
		return ttl, ok && ttl > 0
	case dns.RcodeSuccess:
		if len(resp.Answer) == 0 {
			neg, ok := negativeTTL(resp, c.cfg.MaxNegativeTTL)
			ttl := min(neg, lowestTTL(resp, neg))
			return ttl, ok && ttl > 0
		}
		ttl := lowestTTL(resp, c.cfg.MaxTTL)
		return ttl, ttl > 0
	}
	return 0, false
}

// lowestTTL is the lowest TTL of resp's records (OPT aside), at most limit:
// no record outlives its own TTL in the cache.
func lowestTTL(resp *dns.Msg, limit time.Duration) time.Duration {
	ttl := limit
	for _, sec := range [][]dns.RR{resp.Answer, resp.Ns, resp.Extra} {
		for _, rr := range sec {
			if rr.Header().Rrtype != dns.TypeOPT {
				ttl = min(ttl, seconds(rr.Header().Ttl))
			}
		}
	}
	return ttl
}

// negativeTTL is RFC 2308 section 5's: the lower of the authority SOA's
// TTL and its MINIMUM field; false without an SOA.
func negativeTTL(resp *dns.Msg, limit time.Duration) (time.Duration, bool) {
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			ttl := min(limit, seconds(soa.Hdr.Ttl), seconds(soa.Minttl))
			return ttl, ttl > 0
		}
	}
	return 0, false
}

func seconds(ttl uint32) time.Duration { return time.Duration(ttl) * time.Second }

// storable packs a copy of resp without its OPT record, every record's TTL
// capped at ttl, so that no record is served with more than the entry's
// lifetime (for a negative answer, its SOA with the negative TTL, as RFC
// 2308 section 5 says).
func storable(resp *dns.Msg, ttl time.Duration) ([]byte, bool) {
	// An OPT record belongs in the additional section only (RFC 6891
	// section 6.1.1): an answer with one elsewhere is malformed, and its
	// "TTL" (the extended rcode and flags) would be served as one.
	for _, sec := range [][]dns.RR{resp.Answer, resp.Ns} {
		for _, rr := range sec {
			if rr.Header().Rrtype == dns.TypeOPT {
				return nil, false
			}
		}
	}
	m := resp.Copy()
	m.Id = 0
	extra := m.Extra[:0]
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	m.Extra = extra
	limit := uint32(ttl / time.Second)
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			rr.Header().Ttl = min(rr.Header().Ttl, limit)
		}
	}
	packed, err := m.Pack()
	if err != nil {
		return nil, false
	}
	return packed, true
}

// remove takes e out; c.mu is held.
func (c *Cache) remove(e *entry) {
	c.lru.Remove(e.elem)
	delete(c.entries, e.key)
	c.bytes -= e.size
}

// Get is the cached answer to query at now, with query's ID and question
// and its records' TTLs lowered by its time in the cache; false on a miss
// or an expired entry (which it removes). The reply is the caller's to
// modify.
func (c *Cache) Get(query *dns.Msg, now time.Time) (*dns.Msg, bool) {
	key, ok := KeyOf(query)
	if !ok {
		return nil, false
	}
	c.mu.Lock()
	e, ok := c.entries[key]
	if ok && !now.Before(e.expires) {
		c.remove(e)
		ok = false
	}
	if !ok {
		c.mu.Unlock()
		return nil, false
	}
	e.hits++
	c.lru.MoveToFront(e.elem)
	packed, stored := e.packed, e.stored
	c.mu.Unlock()

	m := new(dns.Msg)
	if err := m.Unpack(packed); err != nil {
		// Put stored only what packed; this cannot happen.
		return nil, false
	}
	elapsed := uint32(max(0, now.Sub(stored)/time.Second))
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			h.Ttl -= min(h.Ttl, elapsed)
		}
	}
	m.Id = query.Id
	m.Authoritative = false // a cached answer is not (RFC 1035 section 6.1)
	m.Question = []dns.Question{query.Question[0]}
	return m, true
}

// Prefetch lists the keys of the entries hit at least minHits times whose
// remaining time at now is at most fraction of their lifetime (0.1: the
// last tenth) and that have not expired. Each entry is listed once until
// it is Put again. It also removes the expired entries it passes.
func (c *Cache) Prefetch(now time.Time, minHits int, fraction float64) []Key {
	c.mu.Lock()
	defer c.mu.Unlock()
	var keys []Key
	for e := c.lru.Front(); e != nil; {
		next := e.Next()
		en := e.Value.(*entry)
		left := en.expires.Sub(now)
		switch {
		case left <= 0:
			c.remove(en)
		case !en.prefetch && en.hits >= minHits && float64(left) <= fraction*float64(en.ttl):
			en.prefetch = true
			keys = append(keys, en.key)
		}
		e = next
	}
	return keys
}

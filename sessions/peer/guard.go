package peer

import (
	"hash/maphash"
	"net/netip"
	"sync"
)

// replayFilter remembers the salts of recent streams: those clients
// opened (once their first chunk authenticated) and those the peer sent
// (so that a stream of the peer's own, sent back to it, is a replay).
// It holds two generations of at most size salts each: when the newer
// one is full it becomes the older and the oldest is forgotten, so at
// least the last size salts are always remembered, in bounded memory.
type replayFilter struct {
	mu       sync.Mutex
	seed     maphash.Seed
	size     int
	now, old map[uint64]struct{}
}

func newReplayFilter(size int) *replayFilter {
	return &replayFilter{seed: maphash.MakeSeed(), size: size, now: make(map[uint64]struct{}, size)}
}

// add records salt and reports whether it is new: false means it was seen
// before, a replay.
func (f *replayFilter) add(salt []byte) bool {
	h := maphash.Bytes(f.seed, salt)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.now[h]; ok {
		return false
	}
	if _, ok := f.old[h]; ok {
		return false
	}
	if len(f.now) >= f.size {
		f.old, f.now = f.now, make(map[uint64]struct{}, f.size)
	}
	f.now[h] = struct{}{}
	return true
}

// sourceLimit caps the connections held per source (an IPv4 address, or
// the /64 of an IPv6 address: one host often has a whole /64), and of all
// sources together.
type sourceLimit struct {
	mu       sync.Mutex
	max, all int
	total    int
	held     map[netip.Addr]int
}

func newSourceLimit(perSource, all int) *sourceLimit {
	return &sourceLimit{max: perSource, all: all, held: map[netip.Addr]int{}}
}

func sourceKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// acquire takes one of the source's places, or reports false when it has
// none left.
func (l *sourceLimit) acquire(src netip.Addr) bool {
	k := sourceKey(src)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[k] >= l.max || l.total >= l.all {
		return false
	}
	l.held[k]++
	l.total++
	return true
}

// release gives back a place acquire took.
func (l *sourceLimit) release(src netip.Addr) {
	k := sourceKey(src)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.held[k]--; l.held[k] <= 0 {
		delete(l.held, k)
	}
}

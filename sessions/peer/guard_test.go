package peer

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestReplayFilterRemembersTheLastSalts(t *testing.T) {
	f := newReplayFilter(4)
	salt := func(i int) []byte { return fmt.Appendf(nil, "salt-%03d", i) }
	for i := range 10 {
		if !f.add(salt(i)) {
			t.Fatalf("salt %d refused the first time", i)
		}
		// The last size salts are always remembered.
		for j := max(0, i-3); j <= i; j++ {
			if f.add(salt(j)) {
				t.Fatalf("after salt %d, salt %d was taken for new", i, j)
			}
		}
	}
	// Memory is bounded: two generations of at most size.
	if len(f.now) > 4 || len(f.old) > 4 {
		t.Fatalf("filter holds %d + %d salts, want at most 4 + 4", len(f.now), len(f.old))
	}
	// What fell out of both generations is forgotten.
	if !f.add(salt(0)) {
		t.Fatal("salt 0 still remembered after 10 newer ones in a filter of 4")
	}
}

func TestSourceLimit(t *testing.T) {
	l := newSourceLimit(2, 100)
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	v6 := netip.MustParseAddr("2001:db8:1:2::1")
	v6same := netip.MustParseAddr("2001:db8:1:2:ffff::9")
	v6other := netip.MustParseAddr("2001:db8:1:3::1")
	for _, s := range []netip.Addr{a, a, v6, v6same} {
		if !l.acquire(s) {
			t.Fatalf("acquire(%s) refused under the cap", s)
		}
	}
	if l.acquire(a) {
		t.Fatal("a third place for 192.0.2.1 with a cap of 2")
	}
	if l.acquire(netip.MustParseAddr("::ffff:192.0.2.1")) {
		t.Fatal("the IPv4-mapped form of 192.0.2.1 got a place of its own")
	}
	if l.acquire(v6) {
		t.Fatal("a third place in 2001:db8:1:2::/64 with a cap of 2")
	}
	if !l.acquire(b) || !l.acquire(v6other) {
		t.Fatal("other sources refused")
	}
	l.release(a)
	if !l.acquire(a) {
		t.Fatal("a released place was not given back")
	}
	for _, s := range []netip.Addr{a, a, b, v6, v6same, v6other} {
		l.release(s)
	}
	if len(l.held) != 0 || l.total != 0 {
		t.Fatalf("sources left after releasing all: %v (total %d)", l.held, l.total)
	}
}

func TestSourceLimitOfAllSources(t *testing.T) {
	l := newSourceLimit(2, 3)
	for i := range 3 {
		if !l.acquire(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})) {
			t.Fatalf("source %d refused under both caps", i)
		}
	}
	other := netip.MustParseAddr("198.51.100.1")
	if l.acquire(other) {
		t.Fatal("a fourth connection with a cap of 3 for all sources")
	}
	l.release(netip.AddrFrom4([4]byte{192, 0, 2, 0}))
	if !l.acquire(other) {
		t.Fatal("a released place was not given back")
	}
}

// The peer's own salts go into the replay filter, so that its stream sent
// back to it is a replay.
func TestSaltRecorderRecordsThePeersSalts(t *testing.T) {
	f := newReplayFilter(16)
	r := saltRecorder{f}
	salt := make([]byte, 32)
	if err := r.GetSalt(salt); err != nil {
		t.Fatal(err)
	}
	if f.add(salt) {
		t.Fatal("a salt the peer made is not in the replay filter")
	}
}

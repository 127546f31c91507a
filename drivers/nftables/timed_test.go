package nftables

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	gnft "github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// openElements opens a writer in the rig's namespace (the test's thread
// is in it).
func openElements(t testing.TB) *Elements {
	t.Helper()
	e, err := OpenElements()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// timedElement is one element of a timeout set as the kernel lists it.
type timedElement struct {
	timeout, expires time.Duration
}

// timedElements reads a timeout set's elements with google/nftables (an
// independent decoder of the kernel's answer), by address: for sets of a
// few elements, which come in one message (see TestElementsAddConcurrently).
func (r *rig) timedElements(set string, v6 bool) map[netip.Addr]timedElement {
	r.t.Helper()
	kt := gnft.TypeIPAddr
	if v6 {
		kt = gnft.TypeIP6Addr
	}
	es, err := r.d.conn.GetSetElements(&gnft.Set{Table: braidTable(), Name: set, KeyType: kt})
	if err != nil {
		r.t.Fatalf("list the elements of %s: %v", set, err)
	}
	out := map[netip.Addr]timedElement{}
	for _, e := range es {
		a, ok := netip.AddrFromSlice(e.Key)
		if !ok {
			r.t.Fatalf("set %s: element key %x", set, e.Key)
		}
		out[a] = timedElement{timeout: e.Timeout, expires: e.Expires}
	}
	return out
}

// waitFor polls cond until it holds, or fails the test after a generous
// deadline (the suite runs on a busy machine).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	addr4  = netip.MustParseAddr("192.0.2.1")
	addr4b = netip.MustParseAddr("192.0.2.2")
	addr6  = netip.MustParseAddr("2001:db8::1")
)

// TestElementsAddAndExpire: one Add puts elements of both families, each
// with its timeout, into the timeout sets; passes of the driver leave
// them; the kernel removes the short-lived one after its timeout and
// keeps the other.
func TestElementsAddAndExpire(t *testing.T) {
	r := newRig(t)
	want := sample(t)
	r.converge(want)
	e := openElements(t)
	err := e.Add(context.Background(), []TimedElement{
		{Set: "egress_isp1_v4", Addr: addr4, Timeout: 2 * time.Second},
		{Set: "egress_isp1_v4", Addr: addr4b, Timeout: time.Hour},
		{Set: "egress_isp1_v6", Addr: addr6, Timeout: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := r.timedElements("egress_isp1_v4", false)
	if el, ok := got[addr4]; !ok || el.timeout != 2*time.Second || el.expires <= 0 || el.expires > 2*time.Second {
		t.Errorf("%s in egress_isp1_v4: %+v (present %v), want timeout 2s", addr4, el, ok)
	}
	if el, ok := got[addr4b]; !ok || el.timeout != time.Hour {
		t.Errorf("%s in egress_isp1_v4: %+v (present %v), want timeout 1h", addr4b, el, ok)
	}
	if el, ok := r.timedElements("egress_isp1_v6", true)[addr6]; !ok || el.timeout != time.Hour {
		t.Errorf("%s in egress_isp1_v6: %+v (present %v), want timeout 1h", addr6, el, ok)
	}
	r.settled(want)
	r.converge(sampleWith(t, config{allow4: pfxs("10.0.0.0/8")}))
	if _, ok := r.timedElements("egress_isp1_v6", true)[addr6]; !ok {
		t.Errorf("a pass removed %s from egress_isp1_v6", addr6)
	}
	waitFor(t, addr4.String()+" expires from egress_isp1_v4", func() bool {
		_, ok := r.timedElements("egress_isp1_v4", false)[addr4]
		return !ok
	})
	if _, ok := r.timedElements("egress_isp1_v4", false)[addr4b]; !ok {
		t.Errorf("%s (timeout 1h) is gone with %s (timeout 2s)", addr4b, addr4)
	}
}

// TestElementsAddRenews: adding an element that is there renews its
// timeout, to the full timeout from the add.
func TestElementsAddRenews(t *testing.T) {
	r := newRig(t)
	r.converge(sample(t))
	e := openElements(t)
	el := []TimedElement{{Set: "egress_isp1_v4", Addr: addr4, Timeout: time.Hour}}
	if err := e.Add(context.Background(), el); err != nil {
		t.Fatal(err)
	}
	var before time.Duration
	waitFor(t, "some of the element's hour has gone", func() bool {
		before = r.timedElements("egress_isp1_v4", false)[addr4].expires
		return before < time.Hour-5*time.Second
	})
	if err := e.Add(context.Background(), el); err != nil {
		t.Fatal(err)
	}
	got := r.timedElements("egress_isp1_v4", false)[addr4]
	if got.expires <= before {
		t.Errorf("after the second add %s expires in %s, as before it (%s): not renewed", addr4, got.expires, before)
	}
	if got.timeout != time.Hour {
		t.Errorf("timeout %s, want 1h", got.timeout)
	}
}

// TestElementsAddIsAtomic: an Add the kernel refuses in part (a set that
// does not exist, an address of the other family) adds nothing, and says
// which set.
func TestElementsAddIsAtomic(t *testing.T) {
	r := newRig(t)
	r.converge(sample(t))
	e := openElements(t)
	for _, tc := range []struct {
		name string
		bad  TimedElement
		want string
	}{
		{"no such set", TimedElement{Set: "egress_nowhere_v4", Addr: addr4b, Timeout: time.Hour}, "set egress_nowhere_v4: "},
		{"other family", TimedElement{Set: "egress_isp1_v4", Addr: addr6, Timeout: time.Hour}, "set egress_isp1_v4: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.Add(context.Background(), []TimedElement{
				{Set: "egress_isp1_v6", Addr: addr6, Timeout: time.Hour},
				tc.bad,
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one about %q", err, tc.want)
			}
			if n := len(r.timedElements("egress_isp1_v6", true)); n != 0 {
				t.Errorf("a refused Add left %d elements in egress_isp1_v6", n)
			}
		})
	}
	// The socket is still good. An IPv4-mapped address is an IPv6 one.
	mapped := netip.MustParseAddr("::ffff:192.0.2.9")
	if err := e.Add(context.Background(), []TimedElement{{Set: "egress_isp1_v6", Addr: addr6, Timeout: time.Hour}, {Set: "egress_isp1_v6", Addr: mapped, Timeout: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{addr6, mapped} {
		if _, ok := r.timedElements("egress_isp1_v6", true)[a]; !ok {
			t.Errorf("%s is not in egress_isp1_v6", a)
		}
	}
	e.Close()
	if err := e.Add(context.Background(), []TimedElement{{Set: "egress_isp1_v6", Addr: addr6, Timeout: time.Hour}}); !errors.Is(err, errElementsClosed) {
		t.Errorf("Add after Close: %v", err)
	}
}

// TestTimedElementCheck: what is refused before anything is sent.
func TestTimedElementCheck(t *testing.T) {
	for _, tc := range []struct {
		el   TimedElement
		want string
	}{
		{TimedElement{Set: "egress_a_v4", Addr: addr4, Timeout: time.Minute}, ""},
		{TimedElement{Set: "egress a", Addr: addr4, Timeout: time.Minute}, "invalid set name"},
		{TimedElement{Set: "egress_a_v4", Timeout: time.Minute}, "without an address"},
		{TimedElement{Set: "egress_a_v6", Addr: netip.MustParseAddr("::ffff:192.0.2.1"), Timeout: time.Minute}, ""},
		{TimedElement{Set: "egress_a_v6", Addr: netip.MustParseAddr("fe80::1%eth0"), Timeout: time.Minute}, "zone"},
		{TimedElement{Set: "egress_a_v4", Addr: addr4, Timeout: time.Microsecond}, "under a millisecond"},
	} {
		err := tc.el.check()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.el, err, tc.want)
		}
	}
}

// TestElementsBatchRuns: elements are grouped into one message per run of
// one set, at most elementsPerMsg each, and only the last asks for an
// acknowledgement.
func TestElementsBatchRuns(t *testing.T) {
	var es []TimedElement
	for range elementsPerMsg + 1 {
		es = append(es, TimedElement{Set: "a", Addr: addr6, Timeout: time.Minute})
	}
	es = append(es, TimedElement{Set: "b", Addr: addr4, Timeout: time.Minute}, TimedElement{Set: "a", Addr: addr6, Timeout: time.Minute})
	b, n := appendElementsBatch(nil, 100, es)
	if n != 4 {
		t.Fatalf("%d messages, want 4", n)
	}
	var seqs []uint32
	var acks []bool
	for len(b) > 0 {
		l := int(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
		if l < nlmsgHdr || l > len(b) || l%4 != 0 {
			t.Fatalf("malformed message of length %d in %d bytes", l, len(b))
		}
		flags := uint16(b[6]) | uint16(b[7])<<8
		seqs = append(seqs, uint32(b[8])|uint32(b[9])<<8|uint32(b[10])<<16|uint32(b[11])<<24)
		acks = append(acks, flags&unix.NLM_F_ACK != 0)
		b = b[l:]
	}
	if want := []uint32{100, 101, 102, 103, 104, 105}; len(seqs) != len(want) || seqs[0] != 100 || seqs[5] != 105 {
		t.Errorf("sequence numbers %v, want %v", seqs, want)
	}
	if want := []bool{false, false, false, false, true, false}; len(acks) != 6 || acks[4] != true || acks[3] || acks[1] {
		t.Errorf("acknowledgements asked %v, want %v", acks, want)
	}
	if got := setOfMsg(es, 2); got != "b" {
		t.Errorf("message 2 is of set %q, want b", got)
	}
}

// TestElementsAddConcurrently: Adds from many goroutines (the forwarder
// answers concurrently) each land, whole.
func TestElementsAddConcurrently(t *testing.T) {
	r := newRig(t)
	r.converge(sample(t))
	e := openElements(t)
	const workers, each = 4, 50
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			var err error
			for i := range each {
				es := []TimedElement{
					{Set: "egress_isp1_v4", Addr: netip.AddrFrom4([4]byte{198, 18, byte(w), byte(i)}), Timeout: time.Hour},
					{Set: "egress_isp1_v6", Addr: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(w), 15: byte(i)}), Timeout: time.Hour},
				}
				if err = e.Add(context.Background(), es); err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	// Counted by nft: google/nftables' read of a set of several messages
	// came back short now and then (149 of the 200 that nft listed), so
	// r.timedElements serves sets of a few elements only.
	if n4, n6 := len(setAddrs(t, r, "egress_isp1_v4")), len(setAddrs(t, r, "egress_isp1_v6")); n4 != workers*each || n6 != workers*each {
		t.Errorf("%d and %d elements in the sets, want %d each", n4, n6, workers*each)
	}
}

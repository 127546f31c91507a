package watch

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
)

func TestNotifiesOnRouteRuleAndNftablesChanges(t *testing.T) {
	ns := nstest.New(t)
	var k *Kernel
	nstest.Do(t, ns, func() (err error) { k, err = Open(nil); return err })
	defer k.Close()
	var calls atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx, func() { calls.Add(1) }) }()
	wait := func(what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for calls.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no notification for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
		calls.Store(0)
	}
	nstest.Run(t, "ip", "-n", ns, "route", "add", "192.0.2.0/24", "dev", "lo", "table", "100")
	wait("a route added")
	nstest.Run(t, "ip", "-n", ns, "rule", "add", "pref", "100", "lookup", "100")
	wait("a rule added")
	nstest.In(t, ns, "nft", "add", "table", "inet", "x")
	wait("an nftables table added")
	// Drain discards what is queued without reporting it through Run.
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run returned %v", err)
	}
	nstest.Run(t, "ip", "-n", ns, "route", "del", "192.0.2.0/24", "dev", "lo", "table", "100")
	// The notification is queued by the time the delete's ack came back,
	// but give a busy machine time before calling it lost.
	for deadline := time.Now().Add(30 * time.Second); !k.Drain(); {
		if time.Now().After(deadline) {
			t.Fatal("Drain found nothing after a route was deleted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if k.Drain() {
		t.Error("a second Drain found more")
	}
}

func TestLinksNotifiesOnLinkChangesOnly(t *testing.T) {
	ns := nstest.New(t)
	var k *Kernel
	nstest.Do(t, ns, func() (err error) { k, err = OpenLinks(); return err })
	defer k.Close()
	// A notification is queued by the time the request's ack came back;
	// a busy machine still gets time before it is called lost.
	drained := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !k.Drain(); {
			if time.Now().After(deadline) {
				t.Fatalf("no link notification for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	nstest.Run(t, "ip", "-n", ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	drained("a link added")
	// Nothing of the link's happens later on its own while it is down.
	nstest.Run(t, "ip", "-n", ns, "route", "add", "192.0.2.0/24", "dev", "lo", "table", "100")
	if k.Drain() {
		t.Error("a route change was reported as a link change")
	}
	nstest.Run(t, "ip", "-n", ns, "link", "set", "d0", "up")
	drained("a link set up")
	nstest.Run(t, "ip", "-n", ns, "link", "del", "d0")
	drained("a link removed")
}

// A Drain waits for a batch Run has read but not yet reported: the daemon
// stops ignoring changes once Drain returns, so a report after it would
// be taken for a change braid did not make.
func TestDrainWaitsForABatchBeingReported(t *testing.T) {
	ns := nstest.New(t)
	var k *Kernel
	nstest.Do(t, ns, func() (err error) { k, err = Open(nil); return err })
	defer k.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	entered, release := make(chan struct{}, 1), make(chan struct{})
	var released atomic.Bool
	go k.Run(ctx, func() {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	})
	nstest.Run(t, "ip", "-n", ns, "route", "add", "192.0.2.0/24", "dev", "lo", "table", "100")
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("no notification for a route added")
	}
	// Run is inside changed with the batch read: Drain must not return
	// until changed has.
	drained := make(chan bool)
	go func() { k.Drain(); drained <- released.Load() }()
	select {
	case <-drained:
		t.Fatal("Drain returned while Run was still reporting a batch it had read")
	case <-time.After(100 * time.Millisecond):
	}
	released.Store(true)
	close(release)
	if !<-drained {
		t.Fatal("Drain returned before the batch was reported")
	}
}

// The elements of a session's set (per-domain egress, an element per DNS
// answer) change without a pass: Drain finds nothing in them, nor in the
// generation that follows; any other nftables change still counts.
func TestSessionSetElementsAreNoChange(t *testing.T) {
	ns := nstest.New(t)
	nstest.In(t, ns, "nft", "add table inet braid; add set inet braid egress_a_v4 { type ipv4_addr; flags timeout; }; add set inet braid other { type ipv4_addr; }")
	var seen atomic.Int64
	var k *Kernel
	nstest.Do(t, ns, func() (err error) {
		k, err = Open(func(table, set string) bool {
			seen.Add(1)
			return table == "braid" && set == "egress_a_v4"
		})
		return err
	})
	defer k.Close()
	k.Drain()
	nstest.In(t, ns, "nft", "add element inet braid egress_a_v4 { 192.0.2.1 timeout 1h }")
	// The notification is queued by the time nft returns; a busy machine
	// still gets time before it is called lost.
	for deadline := time.Now().Add(30 * time.Second); seen.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if k.Drain() {
			t.Fatal("an element of a session's set was reported as a change")
		}
		if time.Now().After(deadline) {
			t.Fatal("the element's notification never came")
		}
	}
	if k.Drain() {
		t.Fatal("what followed the session's element was reported as a change")
	}
	nstest.In(t, ns, "nft", "add element inet braid other { 192.0.2.1 }")
	for deadline := time.Now().Add(30 * time.Second); !k.Drain(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("an element of a set braid converges was not reported")
		}
	}
}

// Counts, on arbitrary bytes, never panics, and counts what it cannot read.
func FuzzCounts(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		Counts(b, func(table, set string) bool { return true })
	})
}

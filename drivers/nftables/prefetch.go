package nftables

import (
	"context"
	"sync"
)

// prefetch is a read of braid's table being taken in the background.
type prefetch struct {
	done chan struct{}
	l    *live
	err  error
}

// prefetcher holds the read Prefetch is taking for the next Observe. It
// has its own lock: Observe waits for the read without holding the
// driver's transaction lock.
type prefetcher struct {
	mu  sync.Mutex
	pre *prefetch
}

// Prefetch implements reconcile.Prefetcher: it starts reading braid's
// table (elements of every set included) in a goroutine, so that the
// kernel's dumps overlap with the caller's work (parsing and compiling a
// spec, or another driver's observation) instead of following it. The
// next Observe waits for the read and uses it instead of reading again;
// it is used at most once, so every later Observe reads afresh. Apply and
// ApplyBatch discard a read no Observe took, since it predates their
// writes; so does Close. If the read failed, Observe reads afresh and
// reports its own error.
//
// The read shows the table as it was at some moment after Prefetch was
// called, and Observe returns that: a writer must call Prefetch only once
// it holds the namespace's lock (see the netlink driver's Prefetch). A
// second Prefetch while one is pending does nothing, and so does Prefetch
// on a driver that could not open its sockets or is closed.
func (d *Driver) Prefetch(context.Context) {
	d.pf.mu.Lock()
	defer d.pf.mu.Unlock()
	if d.pf.pre != nil || d.failed() != nil {
		return
	}
	p := &prefetch{done: make(chan struct{})}
	d.pf.pre = p
	go func() {
		defer close(p.done)
		p.l, p.err = d.read(func(string) bool { return true })
	}()
}

// takePrefetch returns the pending prefetched read, waiting for it to end,
// and forgets it; nil if there is none or it failed.
func (d *Driver) takePrefetch() *live {
	d.pf.mu.Lock()
	p := d.pf.pre
	d.pf.pre = nil
	d.pf.mu.Unlock()
	if p == nil {
		return nil
	}
	<-p.done
	if p.err != nil {
		d.log.Debug("prefetch failed; reading again", "err", p.err)
		return nil
	}
	return p.l
}

// dropPrefetch discards a prefetched read no Observe took, after waiting
// for it to end (it uses the driver's socket).
func (d *Driver) dropPrefetch() { d.takePrefetch() }

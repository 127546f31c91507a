package mptcp

import "context"

// prefetch is a read of the endpoints and limits being taken in the
// background.
type prefetch struct {
	done   chan struct{}
	live   []kernelEndpoint
	limits Limits
	err    error
}

// Prefetch implements reconcile.Prefetcher: it starts the endpoint dump
// and the limits request in a goroutine, so that they overlap with the
// caller's work (parsing and compiling a spec, or another driver's
// observation) instead of following it. The next Observe waits for them
// and uses them instead of asking again; they are used at most once, so
// every later Observe asks afresh. Apply and ApplyBatch discard a read no
// Observe took, since it predates their writes; so does Close. If the read
// failed, Observe asks afresh and reports its own error.
//
// Unlike Observe, Prefetch asks the kernel even when the next Observe
// turns out to need nothing (a spec without MPTCP): it cannot know yet.
// It does nothing where the kernel has no MPTCP path manager, on a closed
// driver, or while a read is pending. The read shows the kernel as it was
// at some moment after Prefetch was called, and Observe returns that: a
// writer must call Prefetch only once it holds the namespace's lock (see
// the netlink driver's Prefetch).
func (d *Driver) Prefetch(context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pre != nil || d.closed || d.err != nil {
		return
	}
	sock := d.sock
	p := &prefetch{done: make(chan struct{})}
	d.pre = p
	go func() {
		defer close(p.done)
		if p.live, p.err = sock.endpoints(); p.err == nil {
			p.limits, p.err = sock.limits()
		}
	}()
}

// takePrefetch returns the pending prefetched read, waiting for it to
// end, and forgets it; nil if there is none or it failed.
func (d *Driver) takePrefetch() *prefetch {
	d.mu.Lock()
	p := d.pre
	d.pre = nil
	d.mu.Unlock()
	if p == nil {
		return nil
	}
	<-p.done
	if p.err != nil {
		d.log.Debug("prefetch failed; asking again", "err", p.err)
		return nil
	}
	return p
}

// dropPrefetch discards a prefetched read no Observe took, after waiting
// for it to end (it uses the driver's socket).
func (d *Driver) dropPrefetch() { d.takePrefetch() }

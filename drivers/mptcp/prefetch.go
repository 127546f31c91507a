package mptcp

import "context"

// pmRead is the endpoints and limits, read in the background.
type pmRead struct {
	live   []kernelEndpoint
	limits Limits
}

// Prefetch implements reconcile.Prefetcher: it starts the endpoint dump
// and the limits request in a goroutine (see package prefetch: the next
// Observe waits for them and uses them instead of asking again, once; a
// write discards them).
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
	if d.closed || d.err != nil {
		return
	}
	sock := d.sock
	d.pre.Start(func() (p pmRead, err error) {
		if p.live, err = sock.endpoints(); err == nil {
			p.limits, err = sock.limits()
		}
		return p, err
	})
}

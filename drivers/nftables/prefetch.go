package nftables

import "context"

// Prefetch implements reconcile.Prefetcher: it starts reading braid's
// table (elements of every set included) in a goroutine (see package
// prefetch: the next Observe waits for the read and uses it instead of
// reading again, once; a write discards it). The read has its own lock:
// Observe waits for it without holding the driver's transaction lock.
//
// The read shows the table as it was at some moment after Prefetch was
// called, and Observe returns that: a writer must call Prefetch only once
// it holds the namespace's lock (see the netlink driver's Prefetch). A
// second Prefetch while one is pending does nothing, and so does Prefetch
// on a driver that could not open its sockets or is closed.
func (d *Driver) Prefetch(context.Context) {
	if d.failed() != nil {
		return
	}
	d.pre.Start(func() (*live, error) { return d.read(func(string) bool { return true }) })
}

package peer

import (
	"net/netip"
	"runtime"
	"sync"
	"testing"
)

// The destination check must not grow the goroutine that calls it: each
// relayed connection's goroutine runs it once and then lives as long as
// the connection, so a stack grown by the route lookup (netlink keeps a
// 64 KiB buffer on its caller's stack) would cost 128 KiB per connection.
func TestCheckKeepsTheCallersStackSmall(t *testing.T) {
	d, err := newDialer(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var checked sync.WaitGroup
	release := make(chan struct{})
	var done sync.WaitGroup
	for range n {
		checked.Add(1)
		done.Go(func() {
			// An address with a route or without one: either way the
			// kernel is asked.
			d.check(netip.MustParseAddrPort("192.0.2.1:80"))
			checked.Done()
			<-release
		})
	}
	checked.Wait()
	runtime.ReadMemStats(&after)
	close(release)
	done.Wait()
	grown := int64(after.StackInuse) - int64(before.StackInuse)
	if per := grown / n; per > 32<<10 {
		t.Errorf("%d goroutines that ran the check hold %d bytes of stack, %d each: want the check's buffer off their stacks", n, grown, per)
	}
}

package netlink

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/drivers/failpoint"
	"github.com/braid-router/braid/drivers/record"
	"github.com/braid-router/braid/internal/netns"
	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/reconcile/plan"
)

// scaleState is n routes (half IPv4, half IPv6) in braid's steering table
// and m source rules, as a spec's routes: section would yield.
func scaleState(n, m int) []plan.Resource {
	var out []plan.Resource
	for i := range n {
		if i%2 == 0 {
			out = append(out, Route{Table: TableSteer, Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)}), 32),
				Gateway: ip("10.0.0.254"), Link: "wan0"})
		} else {
			out = append(out, Route{Table: TableSteer, Dst: netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}), 128),
				Metric: 1024, Gateway: ip("fd00::fe"), Link: "wan0"})
		}
	}
	for i := range m {
		out = append(out, Rule{Priority: PrioFrom, From: netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i >> 8), byte(i)}), 32),
			Table: TableSteer, SuppressPrefixlen: -1})
	}
	return out
}

// ipBatch renders the same state as ip -batch input.
func ipBatch(state []plan.Resource) string {
	var b strings.Builder
	for _, r := range state {
		switch r := r.(type) {
		case Route:
			fmt.Fprintf(&b, "route add %s via %s dev %s table %d metric %d proto %d\n", r.Dst, r.Gateway, r.Link, r.Table, r.Metric, Protocol)
		case Rule:
			fmt.Fprintf(&b, "rule add pref %d from %s lookup %d proto %d\n", r.Priority, r.From, r.Table, Protocol)
		}
	}
	return b.String()
}

// BenchmarkConverge10kRoutes converges 10,000 routes and 100 rules from
// empty in a fresh namespace and compares with ip -batch of the same
// objects, then times the no-op pass on the converged state: with the
// driver's own sockets, and with a caller's netlink.Handle.
func BenchmarkConverge10kRoutes(b *testing.B) {
	b.Run("own-socket", func(b *testing.B) { benchConverge(b, false) })
	b.Run("given-handle", func(b *testing.B) { benchConverge(b, true) })
}

func benchConverge(b *testing.B, givenHandle bool) {
	nstest.RequireRoot(b)
	state := scaleState(10000, 100)
	batch := filepath.Join(b.TempDir(), "batch")
	if err := os.WriteFile(batch, []byte(ipBatch(state)), 0o600); err != nil {
		b.Fatal(err)
	}
	setup := func() string {
		ns := nstest.New(b)
		addUplink(b, ns)
		return ns
	}
	var braid, batchTime, noop time.Duration
	var noopWrites int64
	for b.Loop() {
		ns := setup()
		start := time.Now()
		nstest.Run(b, "ip", "-n", ns, "-batch", batch)
		batchTime += time.Since(start)

		ns = setup()
		errc := make(chan error, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			errc <- func() error {
				if err := netns.Enter(ns); err != nil {
					return err
				}
				writes := &failpoint.Counter{}
				opts := Options{Record: record.Memory(), Writes: writes}
				if givenHandle {
					h, err := vnl.NewHandle(unix.NETLINK_ROUTE)
					if err != nil {
						return err
					}
					defer h.Close()
					opts.Handle = h
				}
				d, err := New(opts)
				if err != nil {
					return err
				}
				defer d.Close()
				ctx := context.Background()
				start := time.Now()
				live, err := d.Observe(ctx, state)
				if err != nil {
					return err
				}
				changes, _ := plan.Diff(state, live)
				if os.Getenv("ONEBYONE") != "" {
					for _, c := range changes {
						if err := d.Apply(ctx, c); err != nil {
							return err
						}
					}
				} else if n, err := d.ApplyBatch(ctx, changes); err != nil || n != len(changes) {
					return fmt.Errorf("applied %d of %d: %v", n, len(changes), err)
				}
				braid += time.Since(start)
				if len(changes) != len(state) {
					return fmt.Errorf("%d changes, want %d", len(changes), len(state))
				}

				before := writes.Count()
				start = time.Now()
				live, err = d.Observe(ctx, state)
				if err != nil {
					return err
				}
				changes, _ = plan.Diff(state, live)
				noop += time.Since(start)
				noopWrites += writes.Count() - before
				if len(changes) != 0 {
					return fmt.Errorf("no-op pass plans %d changes", len(changes))
				}
				return nil
			}()
		}()
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(braid.Milliseconds())/n, "braid-ms")
	b.ReportMetric(float64(batchTime.Milliseconds())/n, "ip-batch-ms")
	b.ReportMetric(float64(braid)/float64(batchTime), "braid/ip-batch")
	b.ReportMetric(float64(noop.Milliseconds())/n, "noop-ms")
	b.ReportMetric(float64(noopWrites)/n, "noop-writes")
}

// BenchmarkNoopPass10k times one observe and diff of a converged state of
// 10,000 routes and 100 rules.
func BenchmarkNoopPass10k(b *testing.B) {
	nstest.RequireRoot(b)
	state := scaleState(10000, 100)
	ns := nstest.New(b)
	addUplink(b, ns)
	batch := filepath.Join(b.TempDir(), "batch")
	if err := os.WriteFile(batch, []byte(ipBatch(state)), 0o600); err != nil {
		b.Fatal(err)
	}
	nstest.Run(b, "ip", "-n", ns, "-batch", batch)
	nstest.Enter(b, ns) // never left: the thread ends with the benchmark's goroutine
	d, err := New(Options{Record: record.Memory()})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	for b.Loop() {
		live, err := d.Observe(ctx, state)
		if err != nil {
			b.Fatal(err)
		}
		if changes, _ := plan.Diff(state, live); len(changes) != 0 {
			b.Fatalf("%d changes", len(changes))
		}
	}
}

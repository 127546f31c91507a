package nftables

import (
	"context"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/reconcile/plan"
)

// BenchmarkElementsAdd measures the element writer on the real kernel, in
// a throwaway namespace: answers of 1 and 8 addresses, each Add one
// acknowledged transaction, over 65,536 addresses (new elements, then
// renewals). It reports elements/s.
func BenchmarkElementsAdd(b *testing.B) {
	ns := nstest.New(b)
	nstest.Enter(b, ns)
	d := New(Options{})
	if d.err != nil {
		b.Fatal(d.err)
	}
	defer d.Close()
	rs := NewRuleset()
	rs.AddTimeoutSet("egress_isp1_v4", false)
	rs.Add(ChainMangle, "egress-isp1-v4", DstInSet("egress_isp1_v4", false), SetMark(7101))
	want, err := rs.Resources()
	if err != nil {
		b.Fatal(err)
	}
	changes, _ := plan.Diff(want, nil)
	if _, err := d.ApplyBatch(context.Background(), changes); err != nil {
		b.Fatal(err)
	}
	e, err := OpenElements()
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	for _, per := range []int{1, 8} {
		b.Run(strconv.Itoa(per)+"-per-answer", func(b *testing.B) {
			es := make([]TimedElement, per)
			n := uint32(0)
			ctx := context.Background()
			b.ReportAllocs()
			start := time.Now()
			elements := 0
			for b.Loop() {
				for i := range es {
					n++
					es[i] = TimedElement{Set: "egress_isp1_v4", Addr: netip.AddrFrom4([4]byte{198, 18, byte(n >> 8), byte(n)}), Timeout: 10 * time.Minute}
				}
				if err := e.Add(ctx, es); err != nil {
					b.Fatal(err)
				}
				elements += per
			}
			b.ReportMetric(float64(elements)/time.Since(start).Seconds(), "elements/s")
		})
	}
}

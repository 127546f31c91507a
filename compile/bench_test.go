package compile

import (
	"fmt"
	"testing"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile/plan"
)

// bigSpec is the benchmark harness's shape: 10,000 steering routes and 100
// source rules over two uplinks.
func bigSpec() *api.RouterSpec {
	spec := twoUplinks()
	spec.Uplinks[1].IPv6 = &api.UplinkIPv6{Static: &api.Static{Address: "2001:db8:102::2/64", Gateway: "2001:db8:102::1"}}
	var to1, to2, from []string
	for i := range 5000 {
		to1 = append(to1, fmt.Sprintf("100.%d.%d.0/24", 64+i/256, i%256))
		to2 = append(to2, fmt.Sprintf("2001:db8:%x::/48", 0x1000+i))
	}
	for i := range 100 {
		from = append(from, fmt.Sprintf("192.168.%d.0/24", i))
	}
	spec.Routes = []api.RouteRule{{To: to1, Via: "isp1"}, {To: to2, Via: "isp2"}, {From: from, Via: "isp2"}}
	return spec
}

func BenchmarkCompile10k(b *testing.B) {
	spec := bigSpec()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Router(spec, facts.Set{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDiffConverged10k(b *testing.B) {
	d, _ := Router(bigSpec(), facts.Set{})
	live := make([]plan.Observed, len(d.Resources))
	for i, r := range d.Resources {
		live[i] = plan.Observed{Resource: r}
	}
	b.ReportAllocs()
	for b.Loop() {
		if cs, _ := plan.Diff(d.Resources, live); len(cs) != 0 {
			b.Fatal("changes")
		}
	}
}

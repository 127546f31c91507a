package main

import (
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		v    []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(c.v); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.v, got, c.want)
		}
	}
}

// The upload's median decides the goal: 1 Gbit/s; the ratio is braid's
// median over plain forwarding's.
func TestSixPETableVerdict(t *testing.T) {
	for _, c := range []struct {
		up     []float64
		missed bool
		ratio  string
	}{
		{[]float64{0.9e9, 1.2e9, 1.5e9}, false, "| 0.24 |"},
		{[]float64{0.9e9, 0.95e9, 1.5e9}, true, "| 0.19 |"},
	} {
		r := &sixpeResult{
			up:   map[string][]float64{"tunnel": c.up, "plain": {5e9}},
			down: map[string][]float64{"tunnel": {1e9}, "plain": {2e9}},
			mtu:  1462,
		}
		var b strings.Builder
		missed := writeSixPETable(&b, r)
		if (len(missed) > 0) != c.missed {
			t.Errorf("upload %v: missed %v, want missed %v\n%s", c.up, missed, c.missed, b.String())
		}
		up := strings.SplitN(b.String(), "\n", 4)[2]
		if !strings.Contains(up, c.ratio) || !strings.Contains(up, "(upload)") {
			t.Errorf("upload %v: the upload row %q has no ratio %s", c.up, up, c.ratio)
		}
	}
}

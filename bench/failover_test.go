package main

import (
	"testing"
	"time"
)

func TestLongestGap(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms ...int) []time.Time {
		var out []time.Time
		for _, m := range ms {
			out = append(out, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return out
	}
	end := t0.Add(time.Second)
	for _, tt := range []struct {
		reads []time.Time
		want  time.Duration
	}{
		{nil, time.Second}, // nothing read: the whole window
		{at(10, 20, 30, 990), 960 * time.Millisecond},     // the pause in the middle
		{at(400, 410, 420, 1000), 580 * time.Millisecond}, // up to the end
		{at(700, 710), 700 * time.Millisecond},            // from the fault to the first read
		{at(100, 200, 300, 1500), 700 * time.Millisecond}, // a read after the window ends it
	} {
		if got := longestGap(tt.reads, t0, end); got != tt.want {
			t.Errorf("longestGap(%v) = %s, want %s", tt.reads, got, tt.want)
		}
	}
}

func TestLastGapEnd(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms ...int) []time.Time {
		var out []time.Time
		for _, m := range ms {
			out = append(out, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return out
	}
	end := t0.Add(10 * time.Second)
	gap := 200 * time.Millisecond
	reads := []time.Time{}
	for ms := 0; ms <= 10000; ms += 50 {
		if ms > 0 && ms < 800 || ms > 3000 && ms < 3300 {
			continue // two pauses: 0-800 ms and 3000-3300 ms
		}
		reads = append(reads, t0.Add(time.Duration(ms)*time.Millisecond))
	}
	if got := lastGapEnd(reads, t0, end, gap); got != 3300*time.Millisecond {
		t.Errorf("lastGapEnd = %s, want 3.3s", got)
	}
	if got := lastGapEnd(reads[:len(reads)-100], t0, end, gap); got != 10*time.Second {
		t.Errorf("a pause running to the end: %s, want the window", got)
	}
	if got := lastGapEnd(at(50, 100, 150), t0, t0.Add(200*time.Millisecond), gap); got != 0 {
		t.Errorf("no pause: %s", got)
	}
}

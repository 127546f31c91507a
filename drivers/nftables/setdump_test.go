package nftables

import (
	"errors"
	"strings"
	"testing"
)

func TestGenerationFollowsCommits(t *testing.T) {
	r := newRig(t)
	g1, err := r.d.dump.generation()
	if err != nil {
		t.Fatal(err)
	}
	if g2, err := r.d.dump.generation(); err != nil || g2 != g1 {
		t.Fatalf("generation %d then %d (%v) with no change", g1, g2, err)
	}
	r.nft("add", "table", "inet", "other")
	if g3, err := r.d.dump.generation(); err != nil || g3 == g1 {
		t.Fatalf("generation %d before a commit, %d (%v) after", g1, g3, err)
	}
}

// consistent reads again while the generation moves during a read, and
// returns a read's error only when nothing changed meanwhile.
func TestConsistent(t *testing.T) {
	// gens are the generations read in turn; reads the reads' results.
	run := func(gens []uint32, reads []error) (int, error) {
		n := 0
		_, err := consistent(func() (uint32, error) {
			g := gens[0]
			gens = gens[1:]
			return g, nil
		}, func() (*live, error) {
			err := reads[n]
			n++
			return &live{}, err
		})
		return n, err
	}
	if n, err := run([]uint32{1, 1}, []error{nil}); n != 1 || err != nil {
		t.Errorf("a quiet read: %d reads, %v", n, err)
	}
	if n, err := run([]uint32{1, 2, 2, 2}, []error{nil, nil}); n != 2 || err != nil {
		t.Errorf("a read during a commit: %d reads, %v; want 2", n, err)
	}
	gone := errors.New("no such set")
	if n, err := run([]uint32{1, 2, 2, 2}, []error{gone, nil}); n != 2 || err != nil {
		t.Errorf("a read that failed during a commit: %d reads, %v; want it read again", n, err)
	}
	if n, err := run([]uint32{1, 1}, []error{gone}); n != 1 || !errors.Is(err, gone) {
		t.Errorf("a read that failed with nothing changing: %d reads, %v", n, err)
	}
	if n, err := run([]uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, []error{nil, nil, nil, nil, nil}); n != readAttempts || err == nil || !strings.Contains(err.Error(), "changed during each") {
		t.Errorf("a ruleset that never stops changing: %d reads, %v", n, err)
	}
}

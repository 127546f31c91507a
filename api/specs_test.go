package api

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestSpecs checks that every example spec in specs/ is valid and that its
// effective form parses back to the same effective form.
func TestSpecs(t *testing.T) { eachYAML(t, "../specs/*.yaml", loadsAndRoundTrips) }

// eachYAML runs fn on every file pattern matches, as a subtest named after
// the file (without .yaml); it fails if none matches.
func eachYAML(t *testing.T, pattern string, fn func(t *testing.T, file string)) {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no files match %s", pattern)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) { fn(t, f) })
	}
}

// loadsAndRoundTrips checks that file is valid and that its effective form
// is stable (roundTrip).
func loadsAndRoundTrips(t *testing.T, file string) {
	t.Helper()
	d, err := Load(file)
	if err != nil {
		t.Fatalf("Load:\n%v", err)
	}
	roundTrip(t, d)
}

// roundTrip checks that d's effective spec parses, and gives the same
// effective spec again.
func roundTrip(t testing.TB, d *Document) {
	t.Helper()
	eff, err := Effective(d)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := Parse("effective.yaml", eff)
	if err != nil {
		t.Fatalf("effective spec does not parse:\n%v\n%s", err, eff)
	}
	eff2, err := Effective(d2)
	if err != nil {
		t.Fatal(err)
	}
	if string(eff) != string(eff2) {
		t.Fatalf("effective spec changed after a round trip:\n%s\n---\n%s", eff, eff2)
	}
}

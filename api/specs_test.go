package api

import (
	"path/filepath"
	"testing"
)

// TestSpecs checks that every example spec in specs/ is valid and that its
// effective form parses back to the same effective form.
func TestSpecs(t *testing.T) {
	files, err := filepath.Glob("../specs/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no specs in ../specs")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			d, err := Load(f)
			if err != nil {
				t.Fatalf("Load:\n%v", err)
			}
			roundTrip(t, d)
		})
	}
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

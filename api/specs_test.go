package api

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSpecs checks that every example spec in specs/ and its subfolders is
// valid, that its effective form parses back to the same effective form,
// and that it names the committed JSON Schema for editors (hasModeline).
func TestSpecs(t *testing.T) {
	for _, f := range specFiles(t) {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.ToSlash(f), "../specs/"), ".yaml")
		t.Run(name, func(t *testing.T) {
			loadsAndRoundTrips(t, f)
			hasModeline(t, f)
		})
	}
}

// modeline is how a YAML file names its JSON Schema for
// yaml-language-server (VS Code's YAML extension, and the editors using
// the same server).
const modeline = "# yaml-language-server: $schema="

// hasModeline checks that file's first comment lines carry the modeline,
// and that its path, relative to file, is the committed schema.json.
func hasModeline(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if !strings.HasPrefix(line, "#") {
			break
		}
		rel, ok := strings.CutPrefix(strings.TrimSpace(line), modeline)
		if !ok {
			continue
		}
		if got := filepath.Join(filepath.Dir(file), filepath.FromSlash(rel)); got != filepath.Join("..", "api", "schema.json") {
			t.Fatalf("%s names the schema %s, which is %s, not ../api/schema.json", file, rel, got)
		}
		return
	}
	t.Fatalf("%s has no %q line among its first comment lines", file, modeline+"RELATIVE/PATH/api/schema.json")
}

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

// specFiles lists the example specs: specs/*.yaml and the YAML files in
// its subfolders, at any depth.
func specFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir("../specs", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".yaml") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no example specs in ../specs")
	}
	return files
}

// TestFleetNames checks the fleet example's convention: each box's spec is
// boxes/<name>.yaml, where name is its metadata.name, so that a box's
// status names the file its daemon follows.
func TestFleetNames(t *testing.T) {
	eachYAML(t, "../specs/fleet/boxes/*.yaml", func(t *testing.T, f string) {
		d, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimSuffix(filepath.Base(f), ".yaml"); d.Metadata.Name != want {
			t.Errorf("%s: metadata.name is %q, want %q (the file's name)", f, d.Metadata.Name, want)
		}
	})
}

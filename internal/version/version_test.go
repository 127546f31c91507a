package version

import (
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFrom(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123abcd"},
		{Key: "vcs.modified", Value: "true"},
		{Key: "GOARM", Value: "7"},
	}}
	for _, tc := range []struct {
		name         string
		ver, com     string
		bi           *debug.BuildInfo
		wantVersion  string
		wantCommit   string
		wantPlatform string
	}{
		{"ldflags win", "v1.0.0", "feedface", vcs, "v1.0.0", "feedface", " GOARM=7"},
		{"vcs fallback", "", "", vcs, "devel", "0123abcd-dirty", " GOARM=7"},
		{"clean tree", "", "", &debug.BuildInfo{GoVersion: "go1.26.8", Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.modified", Value: "false"}}}, "devel", "0123abcd", ""},
		{"go install", "", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.4.1"}}, "v0.4.1", "", ""},
		{"no build info", "", "", nil, "devel", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := from(tc.ver, tc.com, tc.bi)
			if got.Version != tc.wantVersion || got.Commit != tc.wantCommit {
				t.Errorf("from() = %+v, want version %q commit %q", got, tc.wantVersion, tc.wantCommit)
			}
			if !strings.HasSuffix(got.Platform, tc.wantPlatform) {
				t.Errorf("platform %q, want suffix %q", got.Platform, tc.wantPlatform)
			}
		})
	}
}

// TestLdflags builds a tiny program with the Makefile's -X flags and checks
// they reach Get, so a renamed variable cannot silently drop the stamp.
func TestLdflags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "v")
	pkg := "github.com/braid-router/braid/internal/version"
	cmd := exec.Command("go", "build", "-o", bin, "-ldflags",
		"-X "+pkg+".version=v9.9.9-test -X "+pkg+".commit=c0ffee", "./testdata/printversion")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out); !strings.HasPrefix(got, "braid v9.9.9-test (commit c0ffee, go") {
		t.Errorf("stamped binary says %q", got)
	}
}

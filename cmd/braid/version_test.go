package main

import (
	"encoding/json"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

// TestVersionCommand: `braid version` prints one line, and --json the
// same build information as fields (the stamping itself is tested in
// internal/version).
func TestVersionCommand(t *testing.T) {
	out, err := exec.Command(braidBin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(out))
	if !strings.HasPrefix(line, "braid ") || !strings.Contains(line, runtime.Version()) || strings.Count(line, "\n") != 0 {
		t.Errorf("braid version: %q", line)
	}
	out, err = exec.Command(braidBin, "version", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Version, Commit, Go, Platform string }
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("braid version --json: %v\n%s", err, out)
	}
	if info.Go != runtime.Version() || info.Platform != runtime.GOOS+"/"+runtime.GOARCH || info.Version == "" {
		t.Errorf("braid version --json: %+v", info)
	}
	if !strings.HasPrefix(line, "braid "+info.Version+" ") {
		t.Errorf("the line %q and the JSON %+v disagree", line, info)
	}
}

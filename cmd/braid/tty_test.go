package main

import (
	"os/exec"
	"strings"
	"testing"
)

// onTerminal runs braid in the box under script(1), which gives it a
// pseudo-terminal, feeding input to it.
func (b *box) onTerminal(input string, args ...string) (string, int) {
	b.t.Helper()
	line := braidBin + " --netns " + b.ns + " " + strings.Join(args, " ")
	cmd := exec.Command("script", "-qec", line, "/dev/null")
	cmd.Env = append(cmd.Environ(), b.env...)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		b.t.Fatal(err)
	}
	return string(out), 0
}

func TestDestroyAsksOnATerminal(t *testing.T) {
	b := newBox(t)
	spec := writeSpec(t, labSpec)
	b.must(0, "apply", "-f", spec)
	out, code := b.onTerminal("no\n", "destroy")
	if code != 1 || !strings.Contains(out, "Destroy all of the above?") || !strings.Contains(out, "cancelled; nothing was changed") {
		t.Fatalf("answering no: exit %d\n%s", code, out)
	}
	// A terminal gets colour; the plan is shown once.
	if !strings.Contains(out, "\x1b[31m-\x1b[0m") || strings.Count(out, "Plan: ") != 1 {
		t.Errorf("terminal output:\n%q", out)
	}
	b.must(0, "plan", "-f", spec)
	out, code = b.onTerminal("yes\n", "destroy")
	if code != 0 || !strings.Contains(out, "Verified") {
		t.Fatalf("answering yes: exit %d\n%s", code, out)
	}
	if r := b.must(2, "plan", "-f", spec); !strings.Contains(r.stdout, "+ address[wan1 10.101.0.2/24]") {
		t.Errorf("destroy did not remove the address:\n%s", r.stdout)
	}
	// Piped output has no colour.
	if r := b.must(2, "plan", "-f", spec); strings.Contains(r.stdout, "\x1b[") {
		t.Error("colour escape codes in piped output")
	}
}

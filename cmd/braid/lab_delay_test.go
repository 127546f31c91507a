package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
)

// `braid lab delay` sets a delay on an ISP's link, status lists it and its
// line, clear removes both; a malformed round-trip time is refused.
func TestLabDelayCLI(t *testing.T) {
	l := labtest.New(t)
	braid := func(args ...string) (string, error) {
		out, err := exec.Command(braidBin, args...).CombinedOutput()
		return string(out), err
	}
	if out, err := braid("lab", "delay", "--name", l.Name, "isp2", "30ms"); err != nil || !strings.Contains(out, "isp2 delay 30ms") {
		t.Fatalf("braid lab delay isp2 30ms: %v\n%s", err, out)
	}
	out, err := braid("lab", "status", "--name", l.Name)
	if err != nil || !regexp.MustCompile(`30ms\s+isp2`).MatchString(out) || !regexp.MustCompile(`delay-isp2\s+\S+\s+\d+\s+running`).MatchString(out) {
		t.Errorf("lab status does not show the delay and its running line: %v\n%s", err, out)
	}
	ds, err := l.Delays()
	if err != nil || len(ds) != 1 || ds[0].ISP != lab.RoleISP2 || ds[0].RTT.String() != "30ms" {
		t.Errorf("Delays() = %v, %v", ds, err)
	}
	if out, err := braid("lab", "delay", "--name", l.Name, "isp2", "soon"); err == nil || !strings.Contains(out, "want a round-trip time") {
		t.Errorf("braid lab delay isp2 soon: %v\n%s", err, out)
	}
	if out, err := braid("lab", "delay", "--name", l.Name, "isp2", "clear"); err != nil || !strings.Contains(out, "isp2 has no delay") {
		t.Fatalf("braid lab delay isp2 clear: %v\n%s", err, out)
	}
	out, err = braid("lab", "status", "--name", l.Name)
	if err != nil || strings.Contains(out, "DELAY") || strings.Contains(out, "delay-isp2") {
		t.Errorf("lab status after clear: %v\n%s", err, out)
	}
}

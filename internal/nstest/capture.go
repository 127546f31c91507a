package nstest

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Capture is tshark capturing on a link of a network namespace into a
// file, for a test to read back how the wire saw what braid sent.
type Capture struct {
	t    testing.TB
	cmd  *exec.Cmd
	file string
	out  *SyncBuffer
}

// StartCapture starts tshark on link in ns with the capture filter bpf,
// and returns once it captures. The capture is killed when the test ends.
func StartCapture(t testing.TB, ns, link, bpf string) *Capture {
	t.Helper()
	RequireBinary(t, "tshark")
	c := &Capture{t: t, file: filepath.Join(t.TempDir(), link+".pcapng"), out: &SyncBuffer{}}
	c.cmd = exec.Command("ip", "netns", "exec", ns, "tshark", "-n", "-i", link, "-f", bpf, "-w", c.file)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	// tshark's dumpcap holds the output pipes: once tshark is gone, Wait
	// must not wait for them (a test that fails before Stop would hang).
	c.cmd.WaitDelay = 5 * time.Second
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Signal(syscall.SIGINT)
			c.cmd.Wait()
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(c.out.String(), "Capturing on") {
		if time.Now().After(deadline) {
			t.Fatalf("tshark did not start capturing on %s in %s:\n%s", link, ns, c.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c
}

// Stop ends the capture, so that its file is whole.
func (c *Capture) Stop() {
	c.t.Helper()
	c.cmd.Process.Signal(syscall.SIGINT)
	if err := c.cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			c.t.Fatalf("tshark: %v\n%s", err, c.out)
		}
	}
}

// Fields lists, one packet a line, the fields (separated by |) of the
// packets matching the display filter. It may read a capture still
// being written, which ends mid-packet.
func (c *Capture) Fields(filter string, fields ...string) []string {
	c.t.Helper()
	args := []string{"-n", "-r", c.file, "-Y", filter, "-T", "fields", "-E", "separator=|"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	var stderr strings.Builder
	cmd := exec.Command("tshark", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && !strings.Contains(stderr.String(), "cut short") && !strings.Contains(stderr.String(), "appears to have been cut") {
		c.t.Fatalf("tshark %v: %v\n%s", args, err, stderr.String())
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

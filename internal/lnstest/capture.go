package lnstest

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
)

// Capture is tshark capturing the L2TP traffic (UDP) of one link into a
// file, for checking afterwards what tshark makes of every frame.
type Capture struct {
	t    testing.TB
	cmd  *exec.Cmd
	file string
	out  *nstest.SyncBuffer
	done bool
}

// StartCapture starts tshark on link ifname of namespace ns, capturing
// UDP, and returns once it captures. It stops when the test ends, if not
// before.
func StartCapture(t testing.TB, ns, ifname string) *Capture {
	t.Helper()
	nstest.RequireBinary(t, "tshark")
	c := &Capture{t: t, file: filepath.Join(t.TempDir(), ifname+".pcapng"), out: &nstest.SyncBuffer{}}
	c.cmd = exec.Command("ip", "netns", "exec", ns, "tshark", "-n", "-i", ifname, "-f", "udp", "-w", c.file)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(c.out.String(), "Capturing on") {
		if time.Now().After(deadline) {
			t.Fatalf("tshark never started capturing:\n%s", c.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

// Stop ends the capture, so that its file is whole.
func (c *Capture) Stop() {
	if c.done {
		return
	}
	c.done = true
	c.cmd.Process.Signal(syscall.SIGINT)
	if err := c.cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			c.t.Errorf("tshark: %v\n%s", err, c.out)
		}
	}
}

// tshark runs tshark on the capture, UDP port 1701 decoded as L2TP
// whichever port the LNS answers from, and returns its output.
func (c *Capture) tshark(args ...string) string {
	c.t.Helper()
	c.Stop()
	args = append([]string{"-n", "-r", c.file, "-d", "udp.port==1701,l2tp"}, args...)
	var stderr bytes.Buffer
	cmd := exec.Command("tshark", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("tshark %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// Summary lists the frames matching the display filter, one a line, as
// tshark summarizes them ("L2TP 147 Control Message - SCCRQ ...").
func (c *Capture) Summary(filter string) string {
	c.t.Helper()
	return c.tshark("-Y", filter)
}

// Problems lists the frames matching the display filter (e.g. ip.src ==
// 10.77.1.50, the LAC's) that tshark finds malformed or warns or errs
// about (its expert info), one a line; empty when there are none.
func (c *Capture) Problems(filter string) string {
	c.t.Helper()
	return strings.TrimSpace(c.tshark("-Y", "("+filter+") && (_ws.malformed || _ws.expert.severity >= 0x00600000)"))
}

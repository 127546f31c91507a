package lab_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
)

// delayTestRTT is the round-trip time the test adds to isp2's link: well
// above what the lab's links take on a busy machine, so that isp1's
// round trip stays below it.
const delayTestRTT = 80 * time.Millisecond

// minRTT pings dst from the box (by the route the test added) and
// returns the shortest round trip of a few.
func minRTT(t *testing.T, l *lab.Lab, dst string) time.Duration {
	t.Helper()
	out := run(t, l, lab.RoleBox, "ping", "-n", "-q", "-c", "5", "-i", "0.1", "-W", "5", dst)
	m := regexp.MustCompile(`= ([\d.]+)/`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ping %s: no round-trip summary:\n%s", dst, out)
	}
	ms, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ping %s: min rtt %.3f ms", dst, ms)
	return time.Duration(ms * float64(time.Millisecond))
}

// TestDelay: a delay on isp2's link to the core adds its round-trip time
// to what the box sends through isp2, and nothing to isp1; TCP crosses
// it whole; clearing it restores the link; the line goes with the lab.
func TestDelay(t *testing.T) {
	l := labtest.New(t)
	// The box reaches the server through isp2 and the steered server
	// through isp1, each from its address there (the core routes each
	// uplink's prefix back through its ISP).
	for _, u := range lab.Uplinks() {
		run(t, l, lab.RoleBox, "ip", "link", "set", "dev", u.Interface, "up")
		run(t, l, lab.RoleBox, "ip", "addr", "add", u.Addr4.String(), "dev", u.Interface)
		run(t, l, lab.RoleBox, "ip", "addr", "add", u.Addr6.String(), "dev", u.Interface, "nodad")
	}
	via2, via1 := uplink(t, "isp2"), uplink(t, "isp1")
	run(t, l, lab.RoleBox, "ip", "route", "add", lab.ServerV4+"/32", "via", via2.Gateway4.String())
	run(t, l, lab.RoleBox, "ip", "route", "add", lab.SteeredServerV4+"/32", "via", via1.Gateway4.String())
	run(t, l, lab.RoleBox, "ip", "route", "add", lab.ServerV6+"/128", "via", via2.Gateway6.String())

	if err := l.Delay(ctx(t), lab.RoleISP2, delayTestRTT); err != nil {
		t.Fatal(err)
	}
	if rtt := minRTT(t, l, lab.ServerV4); rtt < delayTestRTT {
		t.Errorf("round trip through isp2 with a %v delay: %v", delayTestRTT, rtt)
	}
	if rtt := minRTT(t, l, lab.ServerV6); rtt < delayTestRTT {
		t.Errorf("IPv6 round trip through isp2 with a %v delay: %v", delayTestRTT, rtt)
	}
	if rtt := minRTT(t, l, lab.SteeredServerV4); rtt >= delayTestRTT {
		t.Errorf("round trip through isp1 (no delay) is %v, not below isp2's added %v", rtt, delayTestRTT)
	}
	ds, err := l.Delays()
	if err != nil || len(ds) != 1 || ds[0].ISP != lab.RoleISP2 || ds[0].RTT != delayTestRTT {
		t.Errorf("Delays() = %v, %v; want isp2's %v", ds, err, delayTestRTT)
	}

	// TCP through the delayed link: a download from the server, whole.
	want := make([]byte, 1<<20)
	rand.Read(want)
	var ln net.Listener
	if err := l.Do(lab.RoleInet, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(lab.ServerV4, "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write(want)
	}()
	var got []byte
	if err := l.Do(lab.RoleBox, func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		got, err = io.ReadAll(c)
		return err
	}); err != nil {
		t.Fatalf("download through the delayed link: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("download through the delayed link: %d bytes, sha256 %x; want %d, %x", len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}

	// Setting another delay replaces the line; 0 clears it.
	if err := l.Delay(ctx(t), lab.RoleISP2, delayTestRTT*2); err != nil {
		t.Fatal(err)
	}
	if rtt := minRTT(t, l, lab.ServerV4); rtt < 2*delayTestRTT {
		t.Errorf("round trip through isp2 with a %v delay: %v", 2*delayTestRTT, rtt)
	}
	st, err := l.Status(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	pid := 0
	for _, p := range st.Processes {
		if p.Name == "delay-isp2" && p.Alive {
			pid = p.PID
		}
	}
	if pid == 0 {
		t.Fatalf("no live delay-isp2 process in %+v", st.Processes)
	}
	if err := l.Delay(ctx(t), lab.RoleISP2, 0); err != nil {
		t.Fatal(err)
	}
	if rtt := minRTT(t, l, lab.ServerV4); rtt >= delayTestRTT {
		t.Errorf("round trip through isp2 after the delay was cleared: %v", rtt)
	}
	if ds, err := l.Delays(); err != nil || len(ds) != 0 {
		t.Errorf("Delays() after clearing = %v, %v", ds, err)
	}
	if alive(pid) {
		t.Errorf("the delay line (pid %d) runs after the delay was cleared", pid)
	}

	// The line goes with the lab.
	if err := l.Delay(ctx(t), lab.RoleISP2, delayTestRTT); err != nil {
		t.Fatal(err)
	}
	if st, err = l.Status(ctx(t)); err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Processes {
		if p.Name == "delay-isp2" {
			pid = p.PID
		}
	}
	if err := l.Down(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Errorf("the delay line (pid %d) runs after the lab is down", pid)
	}
}

// alive reports whether pid runs (and is not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || len(b) < i+3 || (b[i+2] != 'Z' && b[i+2] != 'X')
}

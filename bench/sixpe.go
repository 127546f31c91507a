package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/braid-router/braid/internal/testlns"
	"github.com/braid-router/braid/sessions/l2tp/dataplane"
)

// The 6PE benchmark's knobs.
var (
	sixpeOnly = flag.Bool("6pe-only", false, "run only the 6PE data plane benchmark (iperf3 through braid's tunnel and through plain forwarding)")
	sixpeTime = flag.Duration("6pe-time", 10*time.Second, "6PE benchmark: how long each iperf3 run lasts")
	// sixpeServe runs this binary as one end of the tunnel instead of
	// the harness: "box" (braid's data plane) or "lns" (the test LNS),
	// in the namespace it was started in, until SIGTERM.
	sixpeServe = flag.String("6pe-serve", "", "internal: serve one end of the 6PE benchmark's tunnel (box or lns)")
)

// The 6PE benchmark's goal (issue 10): braid's data plane carries at
// least 1 Gbit/s of TCP on one core.
const sixpeGoal = 1e9

// The tunnel's fixed IDs and links in the benchmark.
const (
	sixpeBoxTunnel, sixpeBoxSession = 11, 12
	sixpeLNSTunnel, sixpeLNSSession = 21, 22
	sixpeBoxLink, sixpeLNSLink      = "l2tp0", "lns0"
	sixpeUplinkMTU                  = 1500
)

// sixpeResult holds the samples of each path and direction: throughput
// in bit/s, and the CPU share (of one core) of the box's and the LNS's
// processes during the tunnel's runs.
type sixpeResult struct {
	up, down         map[string][]float64 // by path: "tunnel", "plain"
	boxCPU, lnsCPU   []float64            // uploads through the tunnel
	boxCPUd, lnsCPUd []float64            // downloads through the tunnel
	// Downloads through the tunnel with the LNS sending one datagram per
	// packet, and the CPU shares.
	down1, boxCPU1, lnsCPU1 []float64
	// busy are the two CPUs' busy shares (everything, the kernel
	// included) during the tunnel's runs: upload, download, one by one.
	busy [3][2][]float64
	mtu  int
}

// cpuTimes returns each CPU's busy and total time from /proc/stat, in
// ticks.
func cpuTimes() (busy, total []float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		var t, idle float64
		for i, v := range f[1:] {
			x, _ := strconv.ParseFloat(v, 64)
			if i < 8 { // user nice system idle iowait irq softirq steal
				t += x
			}
			if i == 3 || i == 4 {
				idle += x
			}
		}
		busy, total = append(busy, t-idle), append(total, t)
	}
	return busy, total
}

// sixpeBench builds the rig (LAN host, box, test LNS, server), starts
// braid's data plane in the box pinned to CPU 0 with GOMAXPROCS=1 and the
// test LNS pinned to CPU 1, and runs iperf3 from the LAN host to the
// server through the tunnel and through plain IPv6 forwarding in the same
// box, alternating, h.n times each way.
func sixpeBench(ctx context.Context, h *harness) (*sixpeResult, error) {
	for _, bin := range []string{"iperf3", "taskset"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("needs %s (scripts/deps.sh): %w", bin, err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var rig testlns.Rig
	for _, p := range []struct {
		ns   *string
		role string
	}{{&rig.LAN, "6pe-lan"}, {&rig.Box, "6pe-box"}, {&rig.LNS, "6pe-lns"}, {&rig.Server, "6pe-srv"}} {
		if *p.ns, err = h.ns.add(ctx, p.role); err != nil {
			return nil, err
		}
	}
	for _, c := range rig.Commands() {
		if out, err := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s: %w: %s", strings.Join(c, " "), err, out)
		}
	}
	// The same packets on both paths: the LAN's MTU is the tunnel's.
	mtu := dataplane.MTU(sixpeUplinkMTU)
	for _, c := range [][]string{
		{"-n", rig.Box, "link", "set", testlns.LANLink, "mtu", strconv.Itoa(mtu)},
		{"-n", rig.LAN, "link", "set", testlns.HostLink, "mtu", strconv.Itoa(mtu)},
	} {
		if err := ip(ctx, c...); err != nil {
			return nil, err
		}
	}

	box, err := startServe(ctx, self, rig.Box, "box", "0", true)
	if err != nil {
		return nil, err
	}
	defer box.stop()
	lns, err := startServe(ctx, self, rig.LNS, "lns", "1", false)
	if err != nil {
		return nil, err
	}
	defer lns.stop()
	for _, c := range rig.TunnelRoutes(sixpeBoxLink, sixpeLNSLink) {
		if out, err := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s: %w: %s", strings.Join(c, " "), err, out)
		}
	}
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", rig.Server, "iperf3", "-s")
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		return nil, err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()

	r := &sixpeResult{up: map[string][]float64{}, down: map[string][]float64{}, mtu: mtu}
	targets := map[string]string{"tunnel": testlns.ServerTunnel, "plain": testlns.ServerPlain}
	h.logf("6PE: braid's data plane (pid %d, CPU 0, GOMAXPROCS=1) and the test LNS (pid %d, CPU 1); MTU %d on both paths; iperf3 -t %s", box.pid(), lns.pid(), mtu, *sixpeTime)
	for i := range h.n {
		order := []string{"tunnel", "plain"}
		if i%2 == 1 {
			slices.Reverse(order)
		}
		type run struct {
			path, dir string
			down, one bool
		}
		var runs []run
		for _, p := range order {
			runs = append(runs, run{p, "upload", false, false})
		}
		for _, p := range order {
			runs = append(runs, run{p, "download", true, false})
		}
		runs = append(runs, run{"tunnel", "download, the LNS sending one datagram per packet", true, true})
		for _, rn := range runs {
			if rn.one {
				lns.cmd.Process.Signal(syscall.SIGUSR1)
			}
			b0, l0 := box.cpu(), lns.cpu()
			cb0, ct0 := cpuTimes()
			start := time.Now()
			bps, err := iperf(ctx, rig.LAN, targets[rn.path], rn.down)
			if rn.one {
				lns.cmd.Process.Signal(syscall.SIGUSR2)
			}
			if err != nil {
				return nil, fmt.Errorf("iperf3 through the %s path: %w", rn.path, err)
			}
			wall := time.Since(start).Seconds()
			bc, lc := (box.cpu()-b0)/wall, (lns.cpu()-l0)/wall
			cb1, ct1 := cpuTimes()
			var busy [2]float64
			for c := 0; c < 2 && c < len(cb0) && c < len(cb1); c++ {
				if d := ct1[c] - ct0[c]; d > 0 {
					busy[c] = (cb1[c] - cb0[c]) / d
				}
			}
			line := fmt.Sprintf("  %s %s: %.2f Gbit/s, CPUs busy %.0f%% and %.0f%%", rn.path, rn.dir, bps/1e9, 100*busy[0], 100*busy[1])
			if rn.path == "tunnel" {
				line += fmt.Sprintf(", box plane %.0f%% of its core, test LNS %.0f%%", 100*bc, 100*lc)
				k := 0
				if rn.one {
					k = 2
				} else if rn.down {
					k = 1
				}
				for c := range busy {
					r.busy[k][c] = append(r.busy[k][c], busy[c])
				}
			}
			h.logf("%s", line)
			switch {
			case rn.one:
				r.down1, r.boxCPU1, r.lnsCPU1 = append(r.down1, bps), append(r.boxCPU1, bc), append(r.lnsCPU1, lc)
			case rn.down:
				r.down[rn.path] = append(r.down[rn.path], bps)
				if rn.path == "tunnel" {
					r.boxCPUd, r.lnsCPUd = append(r.boxCPUd, bc), append(r.lnsCPUd, lc)
				}
			default:
				r.up[rn.path] = append(r.up[rn.path], bps)
				if rn.path == "tunnel" {
					r.boxCPU, r.lnsCPU = append(r.boxCPU, bc), append(r.lnsCPU, lc)
				}
			}
		}
	}
	return r, nil
}

// iperf runs a TCP iperf3 client in ns to server and returns the bit
// rate the receiver saw; down reverses it (the server sends).
func iperf(ctx context.Context, ns, server string, down bool) (float64, error) {
	args := []string{"netns", "exec", ns, "iperf3", "-J", "-c", server, "-t", strconv.Itoa(int(sixpeTime.Seconds()))}
	if down {
		args = append(args, "-R")
	}
	var out []byte
	var err error
	// The server may not listen yet at the first run, or still be
	// finishing the last.
	for try := 0; try < 60; try++ {
		out, err = exec.CommandContext(ctx, "ip", args...).Output()
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	var res struct {
		Error string `json:"error"`
		End   struct {
			Received struct {
				BPS float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		return 0, fmt.Errorf("%v: %v: %s", err, jerr, out)
	}
	if res.Error != "" {
		return 0, errors.New(res.Error)
	}
	return res.End.Received.BPS, err
}

// served is a running -6pe-serve process.
type served struct {
	cmd *exec.Cmd
}

// startServe starts this binary as one end of the tunnel in ns, pinned to
// cpu (one GOMAXPROCS when one), and waits until it says it is ready.
func startServe(ctx context.Context, self, ns, role, cpu string, one bool) (*served, error) {
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "taskset", "-c", cpu, self, "-6pe-serve", role)
	cmd.Env = os.Environ()
	if one {
		cmd.Env = append(cmd.Env, "GOMAXPROCS=1")
	}
	cmd.Stderr = os.Stderr
	// A harness killed outright takes its tunnel's ends along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &served{cmd: cmd}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		s.stop()
		return nil, fmt.Errorf("6PE %s did not start: %q %v", role, line, err)
	}
	go io.Copy(io.Discard, out)
	return s, nil
}

func (s *served) pid() int { return s.cmd.Process.Pid }

// cpu is the process's user+system CPU time so far, in seconds.
func (s *served) cpu() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.pid()))
	if err != nil {
		return 0
	}
	// Fields after the command's closing parenthesis: utime is the
	// 12th, stime the 13th (fields 14 and 15 of proc(5)).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100 // USER_HZ
}

func (s *served) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
}

// serveSixPE is -6pe-serve: one end of the tunnel, in the current
// namespace, until SIGTERM.
func serveSixPE(role string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	lnsAddr := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(testlns.LNSIPv4 + ":1701"))
	switch role {
	case "box":
		link, err := dataplane.CreateLink(sixpeBoxLink, dataplane.MTU(sixpeUplinkMTU), "tunnel/bench")
		if err != nil {
			return err
		}
		defer link.Close()
		conn, err := net.DialUDP("udp4", nil, lnsAddr)
		if err != nil {
			return err
		}
		defer conn.Close()
		p, err := dataplane.New(link, conn, dataplane.Config{
			LocalTunnel: sixpeBoxTunnel, LocalSession: sixpeBoxSession,
			PeerTunnel: sixpeLNSTunnel, PeerSession: sixpeLNSSession,
		})
		if err != nil {
			return err
		}
		fmt.Println("ready")
		err = p.Run(ctx)
		fmt.Fprintf(os.Stderr, "bench: 6PE box: %+v\n", p.Stats())
		return err
	case "lns":
		conn, err := net.ListenUDP("udp4", lnsAddr)
		if err != nil {
			return err
		}
		defer conn.Close()
		l, err := testlns.Start(conn, testlns.Config{Link: sixpeLNSLink, MTU: sixpeUplinkMTU,
			TunnelID: sixpeLNSTunnel, SessionID: sixpeLNSSession, PeerTunnel: sixpeBoxTunnel, PeerSession: sixpeBoxSession})
		if err != nil {
			return err
		}
		// SIGUSR1: one datagram per packet to the box; SIGUSR2: GSO.
		usr := make(chan os.Signal, 1)
		signal.Notify(usr, syscall.SIGUSR1, syscall.SIGUSR2)
		fmt.Println("ready")
		for ctx.Err() == nil {
			select {
			case sig := <-usr:
				l.SendOneByOne(sig == syscall.SIGUSR1)
			case <-ctx.Done():
			}
		}
		l.Close()
		if l.Malformed() > 0 {
			return fmt.Errorf("the test LNS refused %d datagrams: %s", l.Malformed(), strings.Join(l.Bad(), "; "))
		}
		return nil
	}
	return fmt.Errorf("-6pe-serve %q: box or lns", role)
}

// writeSixPETable writes the 6PE rows: throughput each way through
// braid's data plane beside plain forwarding, and the CPU the two ends
// of the tunnel used.
func writeSixPETable(w io.Writer, r *sixpeResult) (missed []string) {
	fmt.Fprintln(w, "| what | braid | alternative | ratio | goal | verdict |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- |")
	gbit := func(v []float64, label string) string {
		if len(v) == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f Gbit/s (min %.2f) `%s`", median(v)/1e9, slices.Min(v)/1e9, label)
	}
	pct := func(v []float64) string {
		if len(v) == 0 {
			return "—"
		}
		return fmt.Sprintf("%.0f%% (max %.0f%%)", 100*median(v), 100*slices.Max(v))
	}
	for k, d := range []struct {
		what     string
		v        map[string][]float64
		box, lns []float64
		goal     bool
	}{
		{"TCP LAN host → server (upload)", r.up, r.boxCPU, r.lnsCPU, true},
		{"TCP server → LAN host (download, iperf3 -R)", r.down, r.boxCPUd, r.lnsCPUd, false},
		// Plain forwarding has no LNS: its downloads are the same.
		{"TCP server → LAN host (download), the LNS sending one datagram per packet", map[string][]float64{"tunnel": r.down1, "plain": r.down["plain"]}, r.boxCPU1, r.lnsCPU1, false},
	} {
		what := fmt.Sprintf("6PE: %s, MTU %d, %d runs of %s: throughput", d.what, r.mtu, len(d.v["tunnel"]), *sixpeTime)
		ratio := "—"
		if t, p := d.v["tunnel"], d.v["plain"]; len(t) > 0 && len(p) > 0 && median(p) > 0 {
			ratio = fmt.Sprintf("%.2f", median(t)/median(p))
		}
		goal, verdict := "—", "—"
		if d.goal {
			goal, verdict = "≥ 1 Gbit/s", "met"
			if len(d.v["tunnel"]) == 0 || median(d.v["tunnel"]) < sixpeGoal {
				verdict = "**missed**"
				missed = append(missed, what)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", what,
			gbit(d.v["tunnel"], "braid's data plane, 1 core"), gbit(d.v["plain"], "plain IPv6 forwarding"), ratio, goal, verdict)
		fmt.Fprintf(w, "| 6PE: %s: CPU of braid's data plane (its one core) and of the test LNS | %s | %s `test LNS` | — | — | — |\n",
			d.what, pct(d.box), pct(d.lns))
		fmt.Fprintf(w, "| 6PE: %s: CPU 0 (braid's data plane) and CPU 1 (the test LNS) busy, all processes and the kernel | %s | %s `CPU 1` | — | — | — |\n",
			d.what, pct(r.busy[k][0]), pct(r.busy[k][1]))
	}
	return missed
}

// median is the median of v (not empty).
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

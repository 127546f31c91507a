package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/braid-router/braid/internal/control"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/session"
)

// The proxy benchmark's knobs.
var (
	proxyOnly    = flag.Bool("proxy-only", false, "run only the proxy benchmark (one flow through braid's box and peer, and 1,000 idle + 100 busy connections, against shadowsocks-libev)")
	proxyTime    = flag.Duration("proxy-time", 10*time.Second, "proxy benchmark: how long each iperf3 run lasts (0: no flows, only the connections)")
	proxyCiphers = flag.String("proxy-ciphers", "chacha20-ietf-poly1305,aes-128-gcm", "proxy benchmark: the ciphers of the one-flow runs, comma-separated (the first also for the connections)")
	proxyIdle    = flag.Int("proxy-idle", 1000, "proxy benchmark: idle proxied connections")
	proxyBusy    = flag.Int("proxy-busy", 100, "proxy benchmark: busy proxied connections, on top of the idle ones")
	proxyRate    = flag.Float64("proxy-rate", 1e6, "proxy benchmark: what each busy connection carries, in bit/s (server to LAN host)")
	proxyWindow  = flag.Duration("proxy-window", 10*time.Second, "proxy benchmark: how long CPU is measured with the connections idle, then busy")
	proxyProfile = flag.String("proxy-cpuprofile", "", "proxy benchmark: write CPU profiles of braid's box and peer (BRAID_CPUPROFILE) to this directory, as box-CIPHER-N.pprof and peer-CIPHER-N.pprof, N counting their starts (1: the flows)")
)

// The proxy rig's addresses: a LAN host, the box (a router between the
// LAN and its one uplink, whose gateway is the peer), the peer, and a
// server beyond the peer with an address for each path.
const (
	pxLANHost   = "10.250.1.10"
	pxBoxLAN    = "10.250.1.1"
	pxBoxWAN    = "10.250.2.1"
	pxPeerWAN   = "10.250.2.2" // the box's gateway, and where both peers listen
	pxPeerSrv   = "10.250.3.1" // the peer's side of the server's link: what the server sees of a proxied flow
	pxServerLnk = "10.250.3.2"
	// The server's addresses: braid's box proxies the first and
	// bypasses the others; the box's nftables redirect the second to
	// ss-redir; the third is plain forwarding.
	pxServerBraid = "10.250.10.1"
	pxServerSS    = "10.250.10.2"
	pxServerPlain = "10.250.10.3"
	pxServerNet   = "10.250.10.0/24"

	pxBraidPort = 8388 // braid's peer
	pxSSPort    = 8389 // ss-server
	pxRedirPort = 1081 // ss-redir in the box
	pxLoadPort  = 9100 // the connections benchmark's server

	// pxPassword is the shadowsocks password of both peers: not a secret.
	pxPassword = "bench-not-a-secret"
	// pxBoxCPU and pxPeerCPU are the cores the box's and the peer's
	// proxies are pinned to.
	pxBoxCPU, pxPeerCPU = "0", "1"
)

// The paths a flow takes from the LAN host to the server.
const (
	pathBraid = "braid" // braid's box (session[proxy/aggregation]) and braid's peer
	pathSS    = "ss"    // ss-redir in the box, ss-server --mptcp in the peer
	pathPlain = "plain" // kernel forwarding through the box and the peer
)

// pxPaths are the paths in the order of a round; each round turns it.
var pxPaths = []string{pathBraid, pathSS, pathPlain}

// pxTarget is the server address a path's flows go to.
func pxTarget(path string) string {
	switch path {
	case pathBraid:
		return pxServerBraid
	case pathSS:
		return pxServerSS
	}
	return pxServerPlain
}

// pxSeenFrom is the source address the server must see on a path: the
// peer's for a proxied flow (the peer dialled it), the box's uplink
// address for plain forwarding (braid's NAT).
func pxSeenFrom(path string) string {
	if path == pathPlain {
		return pxBoxWAN
	}
	return pxPeerSrv
}

// pxCounters names the peer's nftables counters of each path: the bytes
// of its packets, both ways, at the peer. A flow is counted as gone
// through a path only if that path's counter grew by at least what the
// flow carried.
var pxCounters = map[string]string{pathBraid: "braid", pathSS: "ss", pathPlain: "plain"}

// pxCounterTable is the peer's nftables table of counters: the traffic of
// braid's peer's port, ss-server's port, and forwarded traffic to and
// from the plain path's server address.
func pxCounterTable() string {
	return fmt.Sprintf(`table inet bench_paths {
	counter braid {}
	counter ss {}
	counter plain {}
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport %[1]d counter name "braid"
		tcp dport %[2]d counter name "ss"
	}
	chain output {
		type filter hook output priority 0; policy accept;
		tcp sport %[1]d counter name "braid"
		tcp sport %[2]d counter name "ss"
	}
	chain forward {
		type filter hook forward priority 0; policy accept;
		ip daddr %[3]s counter name "plain"
		ip saddr %[3]s counter name "plain"
	}
}
`, pxBraidPort, pxSSPort, pxServerPlain)
}

// pxRedirTable sends the LAN's TCP to the ss path's server address to
// ss-redir, as an OpenMPTCProuter box does (braid's steering bypasses
// that address).
func pxRedirTable() string {
	return fmt.Sprintf(`table ip bench_ssredir {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "lan0" ip daddr %s meta l4proto tcp redirect to :%d
	}
}
`, pxServerSS, pxRedirPort)
}

// parseNftCounters reads `nft -j list counters`: each named counter's
// bytes.
func parseNftCounters(b []byte) (map[string]uint64, error) {
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Name  string `json:"name"`
				Bytes uint64 `json:"bytes"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("nft -j list counters: %w", err)
	}
	out := map[string]uint64{}
	for _, o := range doc.Nftables {
		if o.Counter != nil {
			out[o.Counter.Name] = o.Counter.Bytes
		}
	}
	return out, nil
}

// checkCounters says whether a flow of moved bytes went through path: its
// counter at the peer grew by at least that, and no other path's by more
// than a hundredth of it.
func checkCounters(path string, before, after map[string]uint64, moved uint64) error {
	for p, name := range pxCounters {
		d := after[name] - before[name]
		switch {
		case p == path && d < moved:
			return fmt.Errorf("the flow carried %d bytes, but the peer counted %d on the %s path: it did not go through it", moved, d, path)
		case p != path && d > moved/100:
			return fmt.Errorf("a flow meant for the %s path: the peer counted %d bytes on the %s path", path, d, p)
		}
	}
	return nil
}

// iperfServer is what a one-off iperf3 server (-s -1 -J) reports: the
// addresses its control and data connections came from.
type iperfServer struct {
	Error string `json:"error"`
	Start struct {
		Accepted struct {
			Host string `json:"host"`
		} `json:"accepted_connection"`
		Connected []struct {
			Remote string `json:"remote_host"`
		} `json:"connected"`
	} `json:"start"`
}

// checkIperfServer parses a one-off iperf3 server's JSON and checks that
// every connection came from want.
func checkIperfServer(b []byte, want string) error {
	var s iperfServer
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("iperf3 server: %w: %s", err, lastLines(b, 3))
	}
	if s.Error != "" {
		return fmt.Errorf("iperf3 server: %s", s.Error)
	}
	from := []string{s.Start.Accepted.Host}
	for _, c := range s.Start.Connected {
		from = append(from, c.Remote)
	}
	if len(from) < 2 {
		return fmt.Errorf("iperf3 server: no data connection in its report")
	}
	for _, f := range from {
		if a, err := netip.ParseAddr(f); err != nil || a.Unmap().String() != want {
			return fmt.Errorf("the server saw a connection from %q, want %s", f, want)
		}
	}
	return nil
}

// iperfClient is what the iperf3 client reports: the receiver's rate and
// bytes.
type iperfClient struct {
	Error string `json:"error"`
	End   struct {
		Received struct {
			Bytes uint64  `json:"bytes"`
			BPS   float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
}

// parseIperfClient reads an iperf3 client's JSON.
func parseIperfClient(b []byte) (iperfClient, error) {
	var c iperfClient
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("iperf3: %w: %s", err, lastLines(b, 3))
	}
	if c.Error != "" {
		return c, fmt.Errorf("iperf3: %s", c.Error)
	}
	if c.End.Received.Bytes == 0 {
		return c, errors.New("iperf3: no byte received")
	}
	return c, nil
}

// writeProxyBoxSpec writes the box's spec: the LAN, one static uplink
// whose gateway is the peer, MPTCP on it, and aggregation through braid's
// peer with cipher, bypassing the ss and plain paths' server addresses.
func writeProxyBoxSpec(w io.Writer, cipher string) error {
	_, err := fmt.Fprintf(w, `# Generated by the benchmark harness (go run ./bench): the box of the proxy benchmark.
apiVersion: braid/v1alpha1
kind: Router
metadata:
  name: bench-proxy
spec:
  lan:
    interface: lan0
    addresses: [%s/24]
  uplinks:
  - name: up
    interface: wan0
    priority: 10
    ipv4: {static: {address: %s/24, gateway: %s}}
    mptcp: {mode: subflow}
  aggregation:
    peer:
      address: %s:%d
      cipher: %s
      key: {value: %s}
    tcp: proxy
    udp: direct
    bypass: [%s/32, %s/32]
`, pxBoxLAN, pxBoxWAN, pxPeerWAN, pxPeerWAN, pxBraidPort, cipher, pxPassword, pxServerSS, pxServerPlain)
	return err
}

// writeProxyPeerSpec writes braid's peer's spec.
func writeProxyPeerSpec(w io.Writer, cipher string) error {
	_, err := fmt.Fprintf(w, `# Generated by the benchmark harness (go run ./bench): the peer of the proxy benchmark.
apiVersion: braid/v1alpha1
kind: Peer
metadata:
  name: bench-peer
spec:
  listen: "%s:%d"
  cipher: %s
  key: {value: %s}
`, pxPeerWAN, pxBraidPort, cipher, pxPassword)
	return err
}

// pxRig is the proxy benchmark's namespaces and what runs in them for one
// cipher: braid's box and peer, ss-redir and ss-server, each pinned to
// its core.
type pxRig struct {
	h                      *harness
	lan, box, peer, server string
	cipher                 string
	braidBox, braidPeer    *braidDaemon
	redir, ssServer        *exec.Cmd
	boxPID                 map[string]int // by path: the box's proxy process
	peerPID                map[string]int // by path: the peer's proxy process
	redirLog, ssServerLog  string
	stopOnce               sync.Once
	starts                 int // of each cipher, for the profiles' names
}

// proxyRig builds the namespaces and links; start runs the proxies.
func proxyRig(ctx context.Context, h *harness) (*pxRig, error) {
	r := &pxRig{h: h}
	var err error
	for _, p := range []struct {
		ns   *string
		role string
	}{{&r.lan, "px-lan"}, {&r.box, "px-box"}, {&r.peer, "px-peer"}, {&r.server, "px-srv"}} {
		if *p.ns, err = h.ns.add(ctx, p.role); err != nil {
			return nil, err
		}
	}
	// The box's links are down and unaddressed: braid converges them.
	steps := []struct {
		ns    string
		lines []string
	}{
		{r.lan, []string{
			"link add eth0 type veth peer name lan0 netns " + r.box,
			"address add " + pxLANHost + "/24 dev eth0",
			"link set eth0 up",
			"route add default via " + pxBoxLAN,
		}},
		{r.peer, []string{
			"link add eth0 type veth peer name wan0 netns " + r.box,
			"address add " + pxPeerWAN + "/24 dev eth0",
			"link set eth0 up",
			"link add srv0 type veth peer name eth0 netns " + r.server,
			"address add " + pxPeerSrv + "/24 dev srv0",
			"link set srv0 up",
			"route add " + pxServerNet + " via " + pxServerLnk,
		}},
		{r.server, []string{
			"address add " + pxServerLnk + "/24 dev eth0",
			"link set eth0 up",
			"address add " + pxServerBraid + "/32 dev lo",
			"address add " + pxServerSS + "/32 dev lo",
			"address add " + pxServerPlain + "/32 dev lo",
			"route add default via " + pxPeerSrv,
		}},
	}
	for _, s := range steps {
		if err := ipBatchIn(ctx, s.ns, s.lines); err != nil {
			return nil, err
		}
	}
	if err := inNS(ctx, r.peer, "sh", "-c", "echo 1 >/proc/sys/net/ipv4/ip_forward"); err != nil {
		return nil, err
	}
	if err := nftIn(ctx, r.peer, pxCounterTable()); err != nil {
		return nil, err
	}
	return r, nil
}

// nftIn loads an nftables script in ns.
func nftIn(ctx context.Context, ns, script string) error {
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft -f in %s: %w: %s", ns, err, out)
	}
	return nil
}

// counters reads the peer's path counters.
func (r *pxRig) counters(ctx context.Context) (map[string]uint64, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", r.peer, "nft", "-j", "list", "counters", "table", "inet", "bench_paths").Output()
	if err != nil {
		return nil, fmt.Errorf("nft list counters in the peer: %w", err)
	}
	return parseNftCounters(out)
}

// start runs, for cipher: braid's peer and box (`braid run`, pinned),
// until the proxy session runs and its steering is in place, then
// ss-server --mptcp and ss-redir (pinned the same way) and the box's
// redirect to ss-redir.
func (r *pxRig) start(ctx context.Context, cipher string) error {
	if r.cipher != cipher {
		r.starts = 0
	}
	r.cipher = cipher
	r.starts++
	r.stopOnce = sync.Once{}
	h := r.h
	boxSpec := filepath.Join(h.files, "proxy-box-"+cipher+".yaml")
	peerSpec := filepath.Join(h.files, "proxy-peer-"+cipher+".yaml")
	for path, write := range map[string]func(io.Writer, string) error{boxSpec: writeProxyBoxSpec, peerSpec: writeProxyPeerSpec} {
		var b strings.Builder
		if err := write(&b, cipher); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	var err error
	if r.braidPeer, err = r.pinnedDaemon(ctx, r.peer, pxPeerCPU, peerSpec, fmt.Sprintf("peer-%s-%d", cipher, r.starts)); err != nil {
		return err
	}
	if _, err := r.braidPeer.waitStatus(ctx, 60*time.Second, "the peer session running", func(st reconcile.Status) bool {
		return sessionRunning(st, "session[peer/shadowsocks]")
	}); err != nil {
		return err
	}
	if r.braidBox, err = r.pinnedDaemon(ctx, r.box, pxBoxCPU, boxSpec, fmt.Sprintf("box-%s-%d", cipher, r.starts)); err != nil {
		return err
	}
	// The steering comes once the proxy has found the peer healthy.
	if _, err := r.braidBox.waitStatus(ctx, 60*time.Second, "the proxy session running and its steering in place", func(st reconcile.Status) bool {
		return sessionRunning(st, "session[proxy/aggregation]") && steered(st)
	}); err != nil {
		return err
	}

	// --no-delay: TCP_NODELAY, as braid (Go) sets it and as deployments
	// of shadowsocks-libev commonly run it.
	ssArgs := []string{"-k", pxPassword, "-m", cipher, "--mptcp", "--no-delay", "-t", "600", "-n", "65536"}
	r.ssServerLog = filepath.Join(h.dir, "ss-server-"+cipher+".log")
	if r.ssServer, err = startPinned(r.peer, pxPeerCPU, r.ssServerLog,
		append([]string{"ss-server", "-s", pxPeerWAN, "-p", strconv.Itoa(pxSSPort)}, ssArgs...)...); err != nil {
		return err
	}
	r.redirLog = filepath.Join(h.dir, "ss-redir-"+cipher+".log")
	if r.redir, err = startPinned(r.box, pxBoxCPU, r.redirLog,
		append([]string{"ss-redir", "-s", pxPeerWAN, "-p", strconv.Itoa(pxSSPort), "-b", "0.0.0.0", "-l", strconv.Itoa(pxRedirPort)}, ssArgs...)...); err != nil {
		return err
	}
	if err := nftIn(ctx, r.box, pxRedirTable()); err != nil {
		return err
	}
	r.boxPID = map[string]int{pathBraid: r.braidBox.cmd.Process.Pid, pathSS: r.redir.Process.Pid}
	r.peerPID = map[string]int{pathBraid: r.braidPeer.cmd.Process.Pid, pathSS: r.ssServer.Process.Pid}
	// Each pid must be the program measured, not a wrapper in front of
	// it: taskset and ip netns exec replace themselves with it.
	for path, want := range map[string]string{pathBraid: "braid", pathSS: "ss-redir"} {
		if err := waitComm(ctx, r.boxPID[path], want); err != nil {
			return err
		}
	}
	for path, want := range map[string]string{pathBraid: "braid", pathSS: "ss-server"} {
		if err := waitComm(ctx, r.peerPID[path], want); err != nil {
			return err
		}
	}
	// Both ss programs listen before the first flow.
	for _, l := range []struct{ ns, addr string }{{r.peer, fmt.Sprintf("%s:%d", pxPeerWAN, pxSSPort)}, {r.box, fmt.Sprintf("0.0.0.0:%d", pxRedirPort)}} {
		if err := waitListen(ctx, l.ns, l.addr); err != nil {
			return err
		}
	}
	return nil
}

// sessionRunning says the daemon converged and runs the session addr.
func sessionRunning(st reconcile.Status, addr string) bool {
	if st.LastPass == nil || st.LastPass.Result != reconcile.ResultConverged {
		return false
	}
	for _, s := range st.Sessions {
		if s.Address == addr {
			return s.State == session.Running
		}
	}
	return false
}

// steered says the box's steering into the proxy is in place.
func steered(st reconcile.Status) bool {
	for _, o := range st.Objects {
		if o.Address == "nft.rule[inet braid prerouting_tproxy:tcp-v4]" {
			return true
		}
	}
	return false
}

// pinnedDaemon starts `braid run -f spec` in ns pinned to cpu (taskset:
// the Go runtime then runs one P); with -proxy-cpuprofile, it writes a
// CPU profile there as name.pprof when it stops.
func (r *pxRig) pinnedDaemon(ctx context.Context, ns, cpu, spec, name string) (*braidDaemon, error) {
	p := r.h.braidProc(ns, "run", "-f", spec)
	logPath := filepath.Join(r.h.dir, "daemon-"+ns+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command("taskset", append([]string{"-c", cpu}, p.argv...)...)
	cmd.Env = append(os.Environ(), p.env...)
	if *proxyProfile != "" {
		cmd.Env = append(cmd.Env, "BRAID_CPUPROFILE="+filepath.Join(*proxyProfile, name+".pprof"))
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("braid run: %w", err)
	}
	return &braidDaemon{cmd: cmd, log: logPath, status: control.NewClient(filepath.Join(r.h.dir, "run", ns))}, nil
}

// startPinned starts argv in ns pinned to cpu, its output in logPath.
func startPinned(ns, cpu, logPath string, argv ...string) (*exec.Cmd, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "taskset", "-c", cpu}, argv...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", argv[0], err)
	}
	return cmd, nil
}

// waitComm waits until pid's command name is want (ip netns exec and
// taskset have exec'd it).
func waitComm(ctx context.Context, pid int, want string) error {
	var got string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			return fmt.Errorf("%s (pid %d) is gone", want, pid)
		}
		if got = strings.TrimSpace(string(b)); got == want {
			return nil
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("pid %d is %q, want %s", pid, got, want)
}

// waitListen waits until a TCP socket listens on addr in ns.
func waitListen(ctx context.Context, ns, addr string) error {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		out, _ := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "ss", "-ltnH").Output()
		for line := range strings.SplitSeq(string(out), "\n") {
			if f := strings.Fields(line); len(f) >= 4 && f[3] == addr {
				return nil
			}
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("nothing listens on %s in %s", addr, ns)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop stops what start started: ss-redir's redirect, the ss programs,
// braid's box and peer.
func (r *pxRig) stop() error {
	var errs []error
	r.stopOnce.Do(func() {
		if r.box != "" {
			exec.Command("ip", "netns", "exec", r.box, "nft", "delete", "table", "ip", "bench_ssredir").Run()
		}
		for _, c := range []*exec.Cmd{r.redir, r.ssServer} {
			if c != nil && c.ProcessState == nil {
				c.Process.Signal(syscall.SIGTERM)
				c.Wait()
			}
		}
		for _, d := range []*braidDaemon{r.braidBox, r.braidPeer} {
			if d != nil {
				errs = append(errs, d.stop())
			}
		}
		r.redir, r.ssServer, r.braidBox, r.braidPeer = nil, nil, nil, nil
	})
	return errors.Join(errs...)
}

// alive fails when a proxy process has exited: its figures would be
// another's.
func (r *pxRig) alive() error {
	for _, c := range []struct {
		what string
		cmd  *exec.Cmd
		log  string
	}{{"ss-redir", r.redir, r.redirLog}, {"ss-server", r.ssServer, r.ssServerLog}} {
		if c.cmd != nil && !processAlive(c.cmd.Process.Pid) {
			b, _ := os.ReadFile(c.log)
			return fmt.Errorf("%s exited: %s", c.what, lastLines(b, 5))
		}
	}
	for _, d := range []*braidDaemon{r.braidBox, r.braidPeer} {
		if d != nil && !processAlive(d.cmd.Process.Pid) {
			return fmt.Errorf("braid run exited: %s", d.tail())
		}
	}
	return nil
}

// pxFlows is the one-flow samples of one cipher: throughput in bit/s and
// the box's and peer's proxy processes' CPU (a share of their core), by
// direction ("upload", "download") and path.
type pxFlows struct {
	cipher          string
	bps             map[string]map[string][]float64
	boxCPU, peerCPU map[string]map[string][]float64
}

// pxDirections are the flow's directions: upload (LAN host to server)
// and download (iperf3 -R).
var pxDirections = []string{"upload", "download"}

// flows runs h.n rounds of one iperf3 flow per path and direction,
// turning the paths' order each round.
func (r *pxRig) flows(ctx context.Context) (*pxFlows, error) {
	f := &pxFlows{cipher: r.cipher, bps: map[string]map[string][]float64{}, boxCPU: map[string]map[string][]float64{}, peerCPU: map[string]map[string][]float64{}}
	for _, d := range pxDirections {
		f.bps[d], f.boxCPU[d], f.peerCPU[d] = map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	}
	for i := range r.h.n {
		order := slices.Clone(pxPaths)
		for range i % len(order) {
			order = append(order[1:], order[0])
		}
		for _, dir := range pxDirections {
			for _, path := range order {
				bps, bc, pc, err := r.flow(ctx, path, dir == "download")
				if err != nil {
					return nil, fmt.Errorf("%s, %s through the %s path: %w", r.cipher, dir, path, err)
				}
				f.bps[dir][path] = append(f.bps[dir][path], bps)
				line := fmt.Sprintf("  %s %s %s: %.2f Gbit/s", r.cipher, path, dir, bps/1e9)
				if path != pathPlain {
					f.boxCPU[dir][path] = append(f.boxCPU[dir][path], bc)
					f.peerCPU[dir][path] = append(f.peerCPU[dir][path], pc)
					line += fmt.Sprintf(", box's proxy %.0f%% of its core, peer's %.0f%%", 100*bc, 100*pc)
				}
				r.h.logf("%s", line)
			}
		}
	}
	return f, nil
}

// flow runs one iperf3 flow through path, checks that it went through it
// (the server saw the expected source; the peer counted its bytes on that
// path), and returns the receiver's rate and the box's and peer's proxy
// processes' CPU shares.
func (r *pxRig) flow(ctx context.Context, path string, down bool) (bps, boxCPU, peerCPU float64, err error) {
	if err := r.alive(); err != nil {
		return 0, 0, 0, err
	}
	target := pxTarget(path)
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", r.server, "iperf3", "-s", "-1", "-J", "-B", target)
	var srvOut strings.Builder
	srv.Stdout = &srvOut
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		return 0, 0, 0, err
	}
	srvDone := make(chan struct{})
	go func() { srv.Wait(); close(srvDone) }()
	defer func() {
		srv.Process.Kill() // an error once it has ended
		<-srvDone
	}()
	if err := waitListen(ctx, r.server, target+":5201"); err != nil {
		return 0, 0, 0, err
	}
	before, err := r.counters(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	b0, p0 := cpuOf(r.boxPID[path]), cpuOf(r.peerPID[path])
	start := time.Now()
	args := []string{"netns", "exec", r.lan, "iperf3", "-J", "-c", target, "-t", strconv.Itoa(int(proxyTime.Seconds()))}
	if down {
		args = append(args, "-R")
	}
	out, cerr := exec.CommandContext(ctx, "ip", args...).Output()
	wall := time.Since(start).Seconds()
	b1, p1 := cpuOf(r.boxPID[path]), cpuOf(r.peerPID[path])
	c, err := parseIperfClient(out)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("%w (%v)", err, cerr)
	}
	select {
	case <-srvDone:
	case <-time.After(10 * time.Second):
		return 0, 0, 0, errors.New("the iperf3 server did not end after its one test")
	}
	if err := checkIperfServer([]byte(srvOut.String()), pxSeenFrom(path)); err != nil {
		return 0, 0, 0, err
	}
	after, err := r.counters(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	if err := checkCounters(path, before, after, c.End.Received.Bytes); err != nil {
		return 0, 0, 0, err
	}
	return c.End.Received.BPS, (b1 - b0).Seconds() / wall, (p1 - p0).Seconds() / wall, nil
}

// cpuOf is cpuTime of pid, or 0 for no process (the plain path).
func cpuOf(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	d, _ := cpuTime(pid)
	return d
}

// pxResult is what the proxy benchmark measured.
type pxResult struct {
	flows []*pxFlows
	load  *pxLoad
}

// proxyBench builds the rig and, for each cipher, runs the one-flow
// measurements, then, with the first cipher, the connections.
func proxyBench(ctx context.Context, h *harness) (*pxResult, error) {
	for _, bin := range []string{"iperf3", "taskset", "ss-server", "ss-redir", "nft", "ss"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("needs %s (scripts/deps.sh): %w", bin, err)
		}
	}
	ciphers := strings.Split(*proxyCiphers, ",")
	if *proxyIdle < 0 || *proxyBusy < 1 || *proxyWindow <= 0 || *proxyRate <= 0 || ciphers[0] == "" {
		return nil, errors.New("-proxy-idle must be at least 0, -proxy-busy 1, -proxy-window and -proxy-rate positive, -proxy-ciphers not empty")
	}
	// Each proxied connection is two sockets in the box's proxy and two in
	// the peer's, and the harness holds both ends: raise the limit the
	// children inherit.
	if err := raiseNoFile(uint64(8*(*proxyIdle+*proxyBusy) + 4096)); err != nil {
		return nil, err
	}
	r, err := proxyRig(ctx, h)
	if err != nil {
		return nil, err
	}
	defer r.stop()
	h.logf("proxy: LAN host %s, box %s (braid run: CPU %s), peer %s (braid run: CPU %s), server %s; iperf3 -t %s",
		r.lan, r.box, pxBoxCPU, r.peer, pxPeerCPU, r.server, *proxyTime)
	res := &pxResult{}
	for i, cipher := range ciphers {
		if err := r.start(ctx, cipher); err != nil {
			return nil, fmt.Errorf("%s: %w", cipher, err)
		}
		if *proxyTime > 0 {
			f, err := r.flows(ctx)
			if err != nil {
				return nil, err
			}
			res.flows = append(res.flows, f)
		}
		if i == 0 {
			var err error
			if res.load, err = r.connections(ctx); err != nil {
				return nil, fmt.Errorf("%s: connections: %w", cipher, err)
			}
		}
		if err := r.stop(); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// raiseNoFile raises RLIMIT_NOFILE to at least n (the hard limit too:
// the harness runs as root), for this process and its children.
func raiseNoFile(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = max(lim.Cur, n, lim.Max)
	lim.Max = max(lim.Max, lim.Cur)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", n, err)
	}
	return nil
}

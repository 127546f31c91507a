package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braid-router/braid/internal/netns"
)

// pxLoad is the connections measurement: with idle proxied connections
// open, then busy ones on top, the box's and the peer's proxy
// processes' resident sets and CPU time, per path ("braid", "ss") and
// round.
type pxLoad struct {
	idle, busy int
	rate       float64 // bit/s of each busy connection
	window     time.Duration
	sides      map[string][]pxLoadSample
}

// pxCarriedShare is the share of the busy connections' offered load
// below which a round's row says that a proxy fell short.
const pxCarriedShare = 0.9

// pxLoadSample is one round of one path. RSS in KiB.
type pxLoadSample struct {
	baseBox, basePeer int64 // before the connections
	idleBox, idlePeer int64 // with the idle connections, after the window
	idleCPUBox        time.Duration
	idleCPUPeer       time.Duration
	busyBox, busyPeer int64 // with the busy ones too, after their window
	busyCPUBox        time.Duration
	busyCPUPeer       time.Duration
	carried           float64 // bit/s the busy connections received in the window
}

// connections runs h.n rounds of the connections measurement on braid's
// and shadowsocks-libev's paths, alternating which goes first, each
// round with the proxies started afresh.
func (r *pxRig) connections(ctx context.Context) (*pxLoad, error) {
	l := &pxLoad{idle: *proxyIdle, busy: *proxyBusy, rate: *proxyRate, window: *proxyWindow, sides: map[string][]pxLoadSample{}}
	r.h.logf("proxy: %d idle connections, then %d busy (%s each, server to LAN host), %s windows, %s",
		l.idle, l.busy, fmtRate(l.rate), l.window, r.cipher)
	for i := range r.h.n {
		// Fresh processes each round: neither Go's heap nor glibc's
		// malloc gives all of a round's memory back, and the next
		// round's figures would start from it.
		if err := r.stop(); err != nil {
			return nil, err
		}
		if err := r.start(ctx, r.cipher); err != nil {
			return nil, err
		}
		order := []string{pathBraid, pathSS}
		if i%2 == 1 {
			order = []string{pathSS, pathBraid}
		}
		for _, path := range order {
			s, err := r.load(ctx, path, l)
			if err != nil {
				return nil, fmt.Errorf("%s path: %w", path, err)
			}
			l.sides[path] = append(l.sides[path], s)
			r.h.logf("  %s: RSS box %s → %s idle → %s busy, peer %s → %s → %s; CPU idle box %s peer %s, busy box %s peer %s; carried %s",
				path, fmtKiB(float64(s.baseBox)), fmtKiB(float64(s.idleBox)), fmtKiB(float64(s.busyBox)),
				fmtKiB(float64(s.basePeer)), fmtKiB(float64(s.idlePeer)), fmtKiB(float64(s.busyPeer)),
				s.idleCPUBox, s.idleCPUPeer, s.busyCPUBox, s.busyCPUPeer, fmtRate(s.carried))
		}
	}
	return l, nil
}

// fmtRate prints a rate in bit/s.
func fmtRate(bps float64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.2f Gbit/s", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.1f Mbit/s", bps/1e6)
	}
	return fmt.Sprintf("%.0f kbit/s", bps/1e3)
}

// The one-byte requests of the connections measurement: an idle
// connection is answered and left open; a busy one is sent to at the
// rate.
const (
	reqIdle = 'i'
	reqBusy = 'b'
)

// loadServer is the connections measurement's server: it checks where
// every connection comes from, answers each request, and paces the busy
// connections' downloads.
type loadServer struct {
	ln       net.Listener
	from     string
	rate     float64
	quit     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
	bad      []string
	accepted atomic.Int64
}

func startLoadServer(ns, addr, from string, rate float64) (*loadServer, error) {
	s := &loadServer{from: from, rate: rate, quit: make(chan struct{})}
	err := netns.Do(ns, func() (err error) {
		s.ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on the server: %w", err)
	}
	s.wg.Go(s.accept)
	return s, nil
}

func (s *loadServer) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.accepted.Add(1)
		s.mu.Lock()
		s.conns = append(s.conns, c)
		if host, _, _ := net.SplitHostPort(c.RemoteAddr().String()); host != s.from {
			s.bad = append(s.bad, host)
		}
		s.mu.Unlock()
		s.wg.Go(func() { s.serve(c) })
	}
}

func (s *loadServer) serve(c net.Conn) {
	defer c.Close()
	req := make([]byte, 1)
	if _, err := io.ReadFull(c, req); err != nil {
		return
	}
	if _, err := c.Write(req); err != nil {
		return
	}
	if req[0] != reqBusy {
		io.Copy(io.Discard, c)
		return
	}
	// Send what the rate allows since the start, every tick.
	buf := make([]byte, 32<<10)
	start, sent := time.Now(), 0
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-tick.C:
		}
		want := int(time.Since(start).Seconds() * s.rate / 8)
		for sent < want {
			n, err := c.Write(buf[:min(len(buf), want-sent)])
			sent += n
			if err != nil {
				return
			}
		}
	}
}

// close stops the server and every connection it serves; it is safe to
// call twice.
func (s *loadServer) close() {
	s.once.Do(func() {
		s.ln.Close()
		close(s.quit)
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

// badSources lists the sources other than the expected one.
func (s *loadServer) badSources() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bad
}

// openConns opens n connections from the LAN host to dst and makes
// each one's request, which the server answers through the proxy. The
// connections are dialled in the LAN namespace; the requests go out in
// parallel.
func openConns(ns, dst string, n int, req byte) ([]net.Conn, error) {
	conns := make([]net.Conn, 0, n)
	err := netns.Do(ns, func() error {
		for range n {
			c, err := net.DialTimeout("tcp", dst, 10*time.Second)
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	})
	if err != nil {
		closeAll(conns)
		return nil, fmt.Errorf("connect to %s from the LAN host (%d open): %w", dst, len(conns), err)
	}
	errs := make(chan error, len(conns))
	sem := make(chan struct{}, 64)
	for _, c := range conns {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			// A guard against a hang, not a timing assertion.
			c.SetDeadline(time.Now().Add(30 * time.Second))
			defer c.SetDeadline(time.Time{})
			if _, err := c.Write([]byte{req}); err != nil {
				errs <- err
				return
			}
			b := make([]byte, 1)
			if _, err := io.ReadFull(c, b); err != nil {
				errs <- err
				return
			}
			errs <- nil
		}()
	}
	var failed []error
	for range conns {
		if err := <-errs; err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		closeAll(conns)
		return nil, fmt.Errorf("%d of %d connections got no answer through the proxy, the first: %w", len(failed), len(conns), failed[0])
	}
	return conns, nil
}

func closeAll(cs []net.Conn) {
	for _, c := range cs {
		c.Close()
	}
}

// countEstablished counts the established sockets in `ss -nH` output
// whose local port is port.
func countEstablished(out string, port int) int {
	n := 0
	suffix := ":" + strconv.Itoa(port)
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == "ESTAB" && strings.HasSuffix(f[3], suffix) {
			n++
		}
	}
	return n
}

// peerMPTCP counts the peer's established MPTCP connections on port.
func (r *pxRig) peerMPTCP(ctx context.Context, port int) (int, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", r.peer, "ss", "-MnH").Output()
	if err != nil {
		return 0, fmt.Errorf("ss -M in the peer: %w", err)
	}
	return countEstablished(string(out), port), nil
}

// pxPeerPort is the port a path's peer listens on.
func pxPeerPort(path string) int {
	if path == pathSS {
		return pxSSPort
	}
	return pxBraidPort
}

// load is one round of the connections measurement on path.
func (r *pxRig) load(ctx context.Context, path string, l *pxLoad) (s pxLoadSample, err error) {
	if err := r.alive(); err != nil {
		return s, err
	}
	boxPID, peerPID := r.boxPID[path], r.peerPID[path]
	port := pxPeerPort(path)
	// Nothing left on the peer's port (braid's box probes its peer every
	// few seconds, each probe a short connection).
	if err := r.peerDrained(ctx, port, 30*time.Second); err != nil {
		return s, fmt.Errorf("before the round: %w", err)
	}
	srv, err := startLoadServer(r.server, fmt.Sprintf("%s:%d", pxTarget(path), pxLoadPort), pxSeenFrom(path), l.rate)
	if err != nil {
		return s, err
	}
	var conns []net.Conn
	var readers sync.WaitGroup
	// The server's ends close first, so that it never writes to a
	// connection the LAN host has closed: the EPIPE would come with a
	// SIGPIPE, which the harness takes for a reader gone from its stdout.
	closeConns := func() {
		srv.close()
		closeAll(conns)
		conns = nil
		readers.Wait()
	}
	defer closeConns()
	var rssErr error
	rss := func(pid int) int64 {
		v, err := vmRSS(pid)
		if err != nil && rssErr == nil {
			rssErr = fmt.Errorf("RSS of pid %d: %w", pid, err)
		}
		return v
	}
	s.baseBox, s.basePeer = rss(boxPID), rss(peerPID)
	dst := fmt.Sprintf("%s:%d", pxTarget(path), pxLoadPort)

	idle, err := openConns(r.lan, dst, l.idle, reqIdle)
	if err != nil {
		return s, fmt.Errorf("idle connections: %w", err)
	}
	conns = append(conns, idle...)
	if err := r.throughProxy(ctx, srv, port, len(conns)); err != nil {
		return s, err
	}
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		return s, err
	}
	b0, p0 := cpuOf(boxPID), cpuOf(peerPID)
	if err := sleepCtx(ctx, l.window); err != nil {
		return s, err
	}
	s.idleCPUBox, s.idleCPUPeer = cpuOf(boxPID)-b0, cpuOf(peerPID)-p0
	s.idleBox, s.idlePeer = rss(boxPID), rss(peerPID)

	busy, err := openConns(r.lan, dst, l.busy, reqBusy)
	if err != nil {
		return s, fmt.Errorf("busy connections: %w", err)
	}
	conns = append(conns, busy...)
	if err := r.throughProxy(ctx, srv, port, len(conns)); err != nil {
		return s, err
	}
	var received atomic.Int64
	for _, c := range busy {
		readers.Go(func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := c.Read(buf)
				received.Add(int64(n))
				if err != nil {
					return
				}
			}
		})
	}
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		return s, err
	}
	n0, b0, p0, t0 := received.Load(), cpuOf(boxPID), cpuOf(peerPID), time.Now()
	if err := sleepCtx(ctx, l.window); err != nil {
		return s, err
	}
	n1, b1, p1, t1 := received.Load(), cpuOf(boxPID), cpuOf(peerPID), time.Now()
	s.busyCPUBox, s.busyCPUPeer = b1-b0, p1-p0
	s.busyBox, s.busyPeer = rss(boxPID), rss(peerPID)
	s.carried = float64(n1-n0) * 8 / t1.Sub(t0).Seconds()
	if rssErr != nil {
		return s, rssErr
	}
	if offered := float64(l.busy) * l.rate; s.carried < pxCarriedShare*offered {
		// Not an error: the proxy could not carry the load (or the
		// machine could not run it); its CPU is for what it carried,
		// which the table shows beside it.
		r.h.logf("  %s: the busy connections received %s, less than %.0f%% of the %s the server offered", path, fmtRate(s.carried), 100*pxCarriedShare, fmtRate(offered))
	}
	if err := r.alive(); err != nil {
		return s, err
	}

	// Gone before the next round: the proxies pass the closes on.
	closeConns()
	if err := r.peerDrained(ctx, port, 60*time.Second); err != nil {
		return s, fmt.Errorf("after the LAN host closed its connections: %w", err)
	}
	return s, nil
}

// peerDrained waits until the peer holds no established MPTCP connection
// on port, at most limit.
func (r *pxRig) peerDrained(ctx context.Context, port int, limit time.Duration) error {
	for deadline := time.Now().Add(limit); ; {
		n, err := r.peerMPTCP(ctx, port)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the peer still holds %d MPTCP connections on port %d after %s", n, port, limit)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// throughProxy checks that the want connections open went through the
// path: the server saw each one from the peer, and the peer holds that
// many MPTCP connections on the path's port.
func (r *pxRig) throughProxy(ctx context.Context, srv *loadServer, port, want int) error {
	if bad := srv.badSources(); len(bad) > 0 {
		return fmt.Errorf("the server saw %d connections from %s, not the peer's %s", len(bad), bad[0], srv.from)
	}
	if got := srv.accepted.Load(); got != int64(want) {
		return fmt.Errorf("the server accepted %d connections, want %d", got, want)
	}
	n, err := r.peerMPTCP(ctx, port)
	if err != nil {
		return err
	}
	if n < want {
		return fmt.Errorf("the peer holds %d established MPTCP connections on port %d, want %d: the connections did not all go through it", n, port, want)
	}
	return nil
}

// The proxy table's labels of each side.
const (
	pxBraidLabel = "braid's box + braid's peer"
	pxSSLabel    = "ss-redir + ss-server --mptcp --no-delay"
	pxPlainLabel = "kernel forwarding, no proxy"
)

// writeProxyTable writes the proxy rows: each cipher's one flow each way,
// braid beside shadowsocks-libev (the goal) and beside plain forwarding,
// with the proxies' CPU; then the connections' memory and CPU.
func writeProxyTable(w io.Writer, r *pxResult) (missed []string) {
	fmt.Fprintln(w, "| what | braid | alternative | ratio | goal | verdict |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- |")
	gbit := func(v []float64, label string) string {
		if len(v) == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f Gbit/s (min %.2f) `%s`", median(v)/1e9, slices.Min(v)/1e9, label)
	}
	ratio := func(a, b []float64) string {
		if len(a) == 0 || len(b) == 0 || median(b) == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f", median(a)/median(b))
	}
	cpu := func(box, peer []float64, label string) string {
		if len(box) == 0 || len(peer) == 0 {
			return "—"
		}
		return fmt.Sprintf("box %.0f%%, peer %.0f%% `%s`", 100*median(box), 100*median(peer), label)
	}
	for _, f := range r.flows {
		for _, dir := range pxDirections {
			what := "LAN host → server (upload)"
			if dir == "download" {
				what = "server → LAN host (download, iperf3 -R)"
			}
			what = fmt.Sprintf("proxy: one TCP flow %s, %s, %d runs of %s", what, f.cipher, len(f.bps[dir][pathBraid]), *proxyTime)
			b, ss, plain := f.bps[dir][pathBraid], f.bps[dir][pathSS], f.bps[dir][pathPlain]
			verdict := "met"
			if len(b) == 0 || len(ss) == 0 || median(b) < median(ss) {
				verdict = "**missed**"
				missed = append(missed, what)
			}
			fmt.Fprintf(w, "| %s: throughput | %s | %s | %s | ≥ shadowsocks-libev | %s |\n",
				what, gbit(b, pxBraidLabel), gbit(ss, pxSSLabel), ratio(b, ss), verdict)
			fmt.Fprintf(w, "| %s: throughput against plain forwarding | %s | %s | %s | — | — |\n",
				what, gbit(b, pxBraidLabel), gbit(plain, pxPlainLabel), ratio(b, plain))
			fmt.Fprintf(w, "| %s: CPU of the box's and the peer's proxy process, share of its one core | %s | %s | — | — | — |\n",
				what, cpu(f.boxCPU[dir][pathBraid], f.peerCPU[dir][pathBraid], "braid run"), cpu(f.boxCPU[dir][pathSS], f.peerCPU[dir][pathSS], "ss-redir, ss-server"))
		}
	}
	if l := r.load; l != nil {
		b, ss := l.sides[pathBraid], l.sides[pathSS]
		idle := fmt.Sprintf("proxy: %s idle connections", thousands(l.idle))
		busy := fmt.Sprintf("proxy: %s idle + %s busy connections (%s each, server → LAN host)", thousands(l.idle), thousands(l.busy), fmtRate(l.rate))
		rssRow := func(what, alt string, get, base func(pxLoadSample) int64) {
			cell := func(v []pxLoadSample, label string) (string, float64) {
				if len(v) == 0 {
					return "—", 0
				}
				m, m0 := medianOf(v, func(s pxLoadSample) float64 { return float64(get(s)) }), medianOf(v, func(s pxLoadSample) float64 { return float64(base(s)) })
				return fmt.Sprintf("%s (%s before) `%s`", fmtKiB(m), fmtKiB(m0), label), m
			}
			bc, bm := cell(b, "braid run")
			sc, sm := cell(ss, alt)
			rt := "—"
			if sm > 0 {
				rt = fmt.Sprintf("%.2f", bm/sm)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | — | — |\n", what, bc, sc, rt)
		}
		// The ratio is of the box's and the peer's CPU together.
		cpuRow := func(what string, box, peer func(pxLoadSample) time.Duration) {
			cell := func(v []pxLoadSample, label string) (string, float64) {
				if len(v) == 0 {
					return "—", 0
				}
				bx := medianOf(v, func(s pxLoadSample) float64 { return float64(box(s)) })
				pr := medianOf(v, func(s pxLoadSample) float64 { return float64(peer(s)) })
				return fmt.Sprintf("box %s (%.1f%% of a core), peer %s (%.1f%%) `%s`", fmtDuration(bx), 100*bx/float64(l.window),
					fmtDuration(pr), 100*pr/float64(l.window), label), bx + pr
			}
			bc, bt := cell(b, "braid run")
			sc, st := cell(ss, "ss-redir, ss-server")
			rt := "—"
			if st > 0 {
				rt = fmt.Sprintf("%.2f", bt/st)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | — | — |\n", what, bc, sc, rt)
		}
		rssRow(idle+": RSS of the box's proxy process", "ss-redir", func(s pxLoadSample) int64 { return s.idleBox }, func(s pxLoadSample) int64 { return s.baseBox })
		rssRow(idle+": RSS of the peer's proxy process", "ss-server", func(s pxLoadSample) int64 { return s.idlePeer }, func(s pxLoadSample) int64 { return s.basePeer })
		cpuRow(fmt.Sprintf("%s: CPU over %s", idle, l.window), func(s pxLoadSample) time.Duration { return s.idleCPUBox }, func(s pxLoadSample) time.Duration { return s.idleCPUPeer })
		rssRow(busy+": RSS of the box's proxy process", "ss-redir", func(s pxLoadSample) int64 { return s.busyBox }, func(s pxLoadSample) int64 { return s.baseBox })
		rssRow(busy+": RSS of the peer's proxy process", "ss-server", func(s pxLoadSample) int64 { return s.busyPeer }, func(s pxLoadSample) int64 { return s.basePeer })
		cpuRow(fmt.Sprintf("%s: CPU over %s", busy, l.window), func(s pxLoadSample) time.Duration { return s.busyCPUBox }, func(s pxLoadSample) time.Duration { return s.busyCPUPeer })
		// What the busy connections received: a proxy that fell short
		// in a round spent its CPU on less.
		carried := func(v []pxLoadSample, label string) (string, bool) {
			if len(v) == 0 {
				return "—", false
			}
			xs := make([]float64, len(v))
			for i, s := range v {
				xs[i] = s.carried
			}
			return fmt.Sprintf("%s (min %s) `%s`", fmtRate(median(xs)), fmtRate(slices.Min(xs)), label), slices.Min(xs) < pxCarriedShare*float64(l.busy)*l.rate
		}
		bc, bshort := carried(b, "braid run")
		sc, sshort := carried(ss, "ss-redir, ss-server")
		verdict := "—"
		if bshort || sshort {
			verdict = fmt.Sprintf("**short** (< %.0f%% of the offered load in a round)", 100*pxCarriedShare)
		}
		fmt.Fprintf(w, "| %s: received by the busy connections | %s | %s | — | — | %s |\n", busy, bc, sc, verdict)
	}
	return missed
}

// medianOf is the median of f over v (not empty).
func medianOf(v []pxLoadSample, f func(pxLoadSample) float64) float64 {
	xs := make([]float64, len(v))
	for i, s := range v {
		xs[i] = f(s)
	}
	return median(xs)
}

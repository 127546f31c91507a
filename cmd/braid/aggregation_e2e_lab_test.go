package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
)

// labWithPeer builds a lab whose peer namespace runs braid's peer, the
// binary under test (`braid run -f` of lab.PeerSpec, its key in the lab's
// run directory), and removes it when the test ends.
func labWithPeer(t *testing.T) *lab.Lab {
	t.Helper()
	cfg := labtest.Config(t)
	cfg.Braid = braidBin
	return labtest.Up(t, cfg)
}

// connectFrom opens a TCP connection from the lab's namespace for role to
// addr and closes it: whether something listens there, reachable.
func connectFrom(l *lab.Lab, role lab.Role, addr string) error {
	return l.Do(role, func() error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// labAggregationSpec is specs/lab-aggregation.yaml for lab l: the spec
// names the default lab's peer key, l has its own.
func labAggregationSpec(t *testing.T, l *lab.Lab) string {
	t.Helper()
	spec := readFile(t, "../../specs/lab-aggregation.yaml")
	key := filepath.Join(lab.RunDir, lab.DefaultName, lab.PeerKeyFile)
	if !strings.Contains(spec, "key: {file: "+key+"}") {
		t.Fatalf("specs/lab-aggregation.yaml does not name the lab's peer key %s", key)
	}
	return strings.ReplaceAll(spec, key, l.PeerKeyPath())
}

// ssSubflow is one TCP subflow of a Multipath TCP connection, as ss -ti
// lists it.
type ssSubflow struct {
	local, remote netip.AddrPort
	// token identifies the MPTCP connection the subflow belongs to: the
	// same for all its subflows.
	token string
	// bytesReceived is the kernel's tcpi_bytes_received: what the
	// subflow carried toward this end.
	bytesReceived int64
}

// String is "10.101.0.2:40000->10.203.0.2:65101 token 1a2b3c4d received 123".
func (sf ssSubflow) String() string {
	return fmt.Sprintf("%s->%s token %s received %d", sf.local, sf.remote, sf.token, sf.bytesReceived)
}

// ssUlpMPTCP matches the MPTCP part of an ss -ti line and its connection
// token (the one after the slash: the first subflow's local token is 0).
var ssUlpMPTCP = regexp.MustCompile(`tcp-ulp-mptcp .*token:[0-9a-f]+\(id:\d+\)/([0-9a-f]+)\(id:\d+\)`)

var ssBytesReceived = regexp.MustCompile(`\bbytes_received:(\d+)`)

// boxSubflows lists the box's established MPTCP subflows to the peer
// (ss -tinH in the box: the kernel's own per-subflow counters).
func boxSubflows(t *testing.T, l *lab.Lab) []ssSubflow {
	t.Helper()
	out, err := l.Run(context.Background(), lab.RoleBox, "ss", "-tinH", "state", "established", "dst", lab.PeerV4)
	if err != nil {
		t.Fatal(err)
	}
	return parseSubflows(out)
}

// parseSubflows reads the subflows out of `ss -tinH state established`:
// a line with Recv-Q, Send-Q, local and remote address, then a line of
// TCP information, which has tcp-ulp-mptcp for a subflow.
func parseSubflows(out string) []ssSubflow {
	var sfs []ssSubflow
	lines := strings.Split(out, "\n")
	for i := 0; i+1 < len(lines); i++ {
		f := strings.Fields(lines[i])
		info := lines[i+1]
		m := ssUlpMPTCP.FindStringSubmatch(info)
		if len(f) < 4 || m == nil {
			continue
		}
		i++
		sf := ssSubflow{token: m[1]}
		// 10.102.0.2%wan2:40941: a subflow bound to its uplink's device.
		parse := func(s string) netip.AddrPort {
			host, port, err := net.SplitHostPort(s)
			if err != nil {
				return netip.AddrPort{}
			}
			host, _, _ = strings.Cut(host, "%")
			a, _ := netip.ParseAddr(host)
			p, _ := strconv.ParseUint(port, 10, 16)
			return netip.AddrPortFrom(a.Unmap(), uint16(p))
		}
		sf.local, sf.remote = parse(f[2]), parse(f[3])
		sf.bytesReceived = ssCounter(ssBytesReceived, info)
		sfs = append(sfs, sf)
	}
	return sfs
}

// download is a LAN client's download from the lab's download service:
// it reads until it has target bytes, then closes.
type download struct {
	received atomic.Int64
	target   atomic.Int64
	done     chan error
}

// startDownload opens a connection from the LAN client to server (the
// download service) and reads from it in the background until told how
// much is enough (finish).
func startDownload(t *testing.T, l *lab.Lab, server string) *download {
	t.Helper()
	dl := &download{done: make(chan error, 1)}
	dl.target.Store(math.MaxInt64)
	var c net.Conn
	err := l.Do(lab.RoleLAN, func() error {
		var err error
		c, err = net.DialTimeout("tcp", server, 10*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("a LAN download from %s: %v", server, err)
	}
	go func() {
		defer c.Close()
		buf := make([]byte, 64<<10)
		for dl.received.Load() < dl.target.Load() {
			// A bound on a hang, not a timing assertion: a minute
			// without a byte is a broken download.
			c.SetReadDeadline(time.Now().Add(time.Minute))
			n, err := c.Read(buf)
			dl.received.Add(int64(n))
			if err != nil {
				dl.done <- fmt.Errorf("after %d bytes: %w", dl.received.Load(), err)
				return
			}
		}
		dl.done <- nil
	}()
	return dl
}

// failed returns the download's error if it has ended with one.
func (dl *download) failed() error {
	select {
	case err := <-dl.done:
		if err == nil {
			err = fmt.Errorf("ended early after %d bytes", dl.received.Load())
		}
		dl.done <- err
		return err
	default:
		return nil
	}
}

// finish asks for more bytes past what came so far, and waits for
// them and for the download to end.
func (dl *download) finish(more int64) error {
	dl.target.Store(dl.received.Load() + more)
	select {
	case err := <-dl.done:
		return err
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("not finished after 2 minutes (%d bytes)", dl.received.Load())
	}
}

// e2eWait polls cond until it holds, failing the test after a minute
// (a bound on a hang on a busy machine, not a measurement) or as soon as
// the download dl, if any, fails; the failure shows the box's subflows.
func e2eWait(t *testing.T, l *lab.Lab, dl *download, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(time.Minute); !cond(); time.Sleep(100 * time.Millisecond) {
		if dl != nil {
			if err := dl.failed(); err != nil {
				t.Fatalf("waiting for %s: the download broke: %v\n%v", what, err, boxSubflows(t, l))
			}
		}
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s\n%v", what, boxSubflows(t, l))
		}
	}
}

// TestAggregationEndToEnd: braid on both ends, in the lab. The lab's
// peer is braid's (`braid run -f` of a kind: Peer spec, its key a random
// file in the lab's run directory); the box runs specs/lab-aggregation.yaml,
// which names that key. For each family, a LAN client downloads from the
// Internet's download service: the server sees the peer's address; the
// box-to-peer connection is Multipath TCP with a subflow from each
// uplink, each carrying data by the kernel's own per-subflow counters
// (ss -ti in the box, never braid's); blackholing isp1, then isp2, in
// the middle of the download does not break it: the other uplink's
// subflow goes on carrying it, and it completes. Then, after kill -9 of
// braid on the box, new LAN TCP connections succeed by plain routing.
func TestAggregationEndToEnd(t *testing.T) {
	l := labWithPeer(t)
	b := labBoxOf(t, l)
	d := b.startDaemon("-f", writeSpec(t, labAggregationSpec(t, l)))
	steeredLAN(t, l, d, "the proxy running and its steering in place")
	wan := map[lab.Role]netip.Addr{
		lab.RoleISP1: netip.MustParseAddr(lab.BoxWAN1V4),
		lab.RoleISP2: netip.MustParseAddr(lab.BoxWAN2V4),
	}
	for _, c := range []struct {
		family, server, peer string
	}{
		{"IPv4", lab.ServerV4, lab.PeerV4},
		{"IPv6", lab.ServerV6, lab.PeerV6},
	} {
		t.Run(c.family, func(t *testing.T) {
			// Steering may come before the peer is proven up (peer
			// health): the measured download starts once a LAN
			// connection goes through the peer.
			whoami := net.JoinHostPort(c.server, strconv.Itoa(lab.WhoamiPort))
			var seen string
			e2eWait(t, l, nil, "the LAN's connections to "+whoami+" to go through the peer "+c.peer, func() bool {
				seen, _ = ask(l, lab.RoleLAN, whoami)
				ap, err := netip.ParseAddrPort(seen)
				return err == nil && ap.Addr().String() == c.peer
			})

			// The connections to the peer before the download's.
			before := map[string]bool{}
			for _, sf := range boxSubflows(t, l) {
				before[sf.token] = true
			}
			dl := startDownload(t, l, net.JoinHostPort(c.server, strconv.Itoa(lab.DownloadPort)))
			// The download's connection: the new one that carried the
			// most (the peer's health probes carry a few bytes).
			conn := func() []ssSubflow {
				sum := map[string]int64{}
				for _, sf := range boxSubflows(t, l) {
					if !before[sf.token] {
						sum[sf.token] += sf.bytesReceived
					}
				}
				var best string
				for tok, n := range sum {
					if best == "" || n > sum[best] {
						best = tok
					}
				}
				var sfs []ssSubflow
				for _, sf := range boxSubflows(t, l) {
					if best != "" && sf.token == best {
						sfs = append(sfs, sf)
					}
				}
				return sfs
			}
			// received is what the subflows from the uplink's address
			// carried, by subflow (a subflow withdrawn and opened again
			// is another one).
			received := func(sfs []ssSubflow, from netip.Addr) map[netip.AddrPort]int64 {
				m := map[netip.AddrPort]int64{}
				for _, sf := range sfs {
					if sf.local.Addr() == from {
						m[sf.local] = sf.bytesReceived
					}
				}
				return m
			}
			// grew reports whether some subflow from the uplink's address
			// carried at least n bytes since the snapshot then.
			grew := func(from netip.Addr, then map[netip.AddrPort]int64, n int64) bool {
				for local, got := range received(conn(), from) {
					if got-then[local] >= n {
						return true
					}
				}
				return false
			}
			const carried = 256 << 10
			var sfs []ssSubflow
			e2eWait(t, l, dl, "a subflow from each uplink, each carrying data", func() bool {
				sfs = conn()
				return grew(wan[lab.RoleISP1], nil, carried) && grew(wan[lab.RoleISP2], nil, carried)
			})
			for _, sf := range sfs {
				if sf.remote != netip.AddrPortFrom(netip.MustParseAddr(lab.PeerV4), lab.PeerPort) {
					t.Errorf("a subflow of the download goes to %s, not the peer", sf.remote)
				}
			}
			t.Logf("the download's subflows: %+v", sfs)

			// The server sees the peer's address, and nothing else.
			out, err := l.Run(context.Background(), lab.RoleInet, "ss", "-tnH", "state", "established", "sport", "=", ":"+strconv.Itoa(lab.DownloadPort))
			if err != nil {
				t.Fatal(err)
			}
			var clients []string
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				if f := strings.Fields(line); len(f) >= 4 {
					ap, err := netip.ParseAddrPort(f[3])
					if err != nil {
						t.Fatalf("ss in the core: %q", line)
					}
					clients = append(clients, ap.Addr().Unmap().String())
				}
			}
			if len(clients) == 0 || slices.ContainsFunc(clients, func(a string) bool { return a != c.peer }) {
				t.Errorf("the download server's clients are %v, want the peer's %s", clients, c.peer)
			}

			// An uplink blackholed in the middle of the download: the
			// other's subflow goes on carrying it; healed, its own
			// carries again.
			for _, isp := range []lab.Role{lab.RoleISP1, lab.RoleISP2} {
				other := lab.RoleISP2
				if isp == lab.RoleISP2 {
					other = lab.RoleISP1
				}
				if err := l.Inject(context.Background(), lab.Fault{ISP: isp, Kind: lab.FaultBlackhole}); err != nil {
					t.Fatal(err)
				}
				sfs := conn()
				atFault, faulted, client := received(sfs, wan[other]), received(sfs, wan[isp]), dl.received.Load()
				e2eWait(t, l, dl, fmt.Sprintf("%s blackholed: the download going on over %s", isp, other), func() bool {
					return grew(wan[other], atFault, 2<<20) && dl.received.Load()-client >= 2<<20
				})
				// The fault is real: what the blackholed uplink carried
				// meanwhile is at most what its rate limit's queue held
				// (50 ms, some 400 kB at 50 Mbit/s).
				if grew(wan[isp], faulted, 1<<20) {
					t.Errorf("%s blackholed: its subflow carried over 1 MiB of the download since: %v", isp, conn())
				}
				if err := l.Clear(context.Background(), isp); err != nil {
					t.Fatal(err)
				}
				atClear := received(conn(), wan[isp])
				e2eWait(t, l, dl, fmt.Sprintf("%s healed: a subflow from it carrying the download again", isp), func() bool {
					return grew(wan[isp], atClear, carried)
				})
			}
			if err := dl.finish(1 << 20); err != nil {
				t.Fatalf("the download: %v", err)
			}
			t.Logf("downloaded %d bytes", dl.received.Load())
		})
	}

	// kill -9: braid's steering stays in the kernel, inert without its
	// listener: new LAN connections take plain routing.
	if t.Failed() {
		return
	}
	d.stop(syscall.SIGKILL)
	for _, c := range []struct {
		server string
		want   []string
	}{
		{lab.ServerV4, []string{lab.BoxWAN1V4, lab.BoxWAN2V4}},
		{lab.ServerV6, []string{lab.LANClientV6}},
	} {
		whoami := net.JoinHostPort(c.server, strconv.Itoa(lab.WhoamiPort))
		for range 3 {
			got, err := ask(l, lab.RoleLAN, whoami)
			ap, perr := netip.ParseAddrPort(got)
			if err != nil || perr != nil || !slices.Contains(c.want, ap.Addr().String()) {
				t.Errorf("after kill -9, LAN to %s: the server saw %q (%v), want one of %v", whoami, got, err, c.want)
			}
		}
		const size = 1 << 20
		server := net.JoinHostPort(c.server, strconv.Itoa(lab.DownloadPort))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		n, err := l.Download(ctx, lab.RoleLAN, "tcp", server, "", size, nil)
		cancel()
		if err != nil || n != size {
			t.Errorf("after kill -9, a LAN download from %s: %d bytes, %v", server, n, err)
		}
	}
}

// parseSubflows on what ss -tinH printed in the lab: two subflows of one
// connection (the first subflow's local token is 0), a plain TCP socket
// without tcp-ulp-mptcp, skipped.
func TestParseSubflows(t *testing.T) {
	out := "0      0      10.102.0.2%wan2:60581 10.203.0.2:65101\n" +
		"\t bbr wscale:10,10 rto:200 rtt:0.036/0.018 mss:1448 bytes_acked:1 bytes_received:1815449 segs_out:457 tcp-ulp-mptcp flags:Jjecv token:2f922afd(id:0)/fb3c464c(id:3) seq:d5cf604ddbe97415 sfseq:1b7c22 ssnoff:df2306c maplen:ff28\n" +
		"0      0      10.203.0.9:4000 10.203.0.2:22\n" +
		"\t cubic wscale:7,7 rto:204 bytes_acked:5 bytes_received:77\n" +
		"0      0           10.101.0.2:37930 10.203.0.2:65101\n" +
		"\t bbr wscale:10,10 bytes_sent:73 bytes_acked:74 bytes_received:5954816 segs_out:761 tcp-ulp-mptcp flags:Mmec token:0000(id:0)/fb3c464c(id:0) seq:d5cf604ddbd5f268 sfseq:59ddd9\n"
	got := parseSubflows(out)
	want := []ssSubflow{
		{netip.MustParseAddrPort("10.102.0.2:60581"), netip.MustParseAddrPort("10.203.0.2:65101"), "fb3c464c", 1815449},
		{netip.MustParseAddrPort("10.101.0.2:37930"), netip.MustParseAddrPort("10.203.0.2:65101"), "fb3c464c", 5954816},
	}
	if !slices.Equal(got, want) {
		t.Errorf("parseSubflows:\n got %v\nwant %v", got, want)
	}
}

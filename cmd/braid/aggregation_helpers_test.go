package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/session"
)

// peerRunning holds once a pass converged with braid's peer session
// running.
func peerRunning(st reconcile.Status) bool {
	s, ok := sessionIn(st, "session[peer/shadowsocks]")
	return converged(st) && ok && s.State == session.Running
}

// runPeer runs `braid run` with args in b (a peer spec among them) and
// waits until its peer session runs.
func runPeer(b *box, args ...string) *daemon {
	b.t.Helper()
	d := b.startDaemon(args...)
	d.until("the peer session running", peerRunning)
	return d
}

// braidPeerDaemon runs `braid run` with a peer spec (port, cipher, the
// key password) in the lab's peer namespace and waits until it serves.
func braidPeerDaemon(t *testing.T, pb *box, port int, cipher, password string) *daemon {
	t.Helper()
	pb.env = []string{"BRAID_RUN_DIR=" + pb.runDir, "BRAID_STATE_DIR=" + pb.stateDir, "BRAID_TEST_PEER_KEY=" + password}
	return runPeer(pb, "-f", writeSpec(t, `apiVersion: braid/v1alpha1
kind: Peer
metadata: {name: vps}
spec:
  listen: "[::]:`+strconv.Itoa(port)+`"
  cipher: `+cipher+`
  key: {env: BRAID_TEST_PEER_KEY}
`))
}

// nsAddr is an address (a prefix) for device dev in namespace ns.
type nsAddr struct{ ns, dev, addr string }

// addrsUp adds each address to its device, IPv6 ones without duplicate
// address detection, and sets the device up.
func addrsUp(t *testing.T, addrs ...nsAddr) {
	t.Helper()
	for _, a := range addrs {
		args := []string{"-n", a.ns, "addr", "add", a.addr, "dev", a.dev}
		if strings.Contains(a.addr, ":") {
			args = append(args, "nodad")
		}
		nstest.Run(t, "ip", args...)
		nstest.Run(t, "ip", "-n", a.ns, "link", "set", a.dev, "up")
	}
}

// subflowLocals returns the local addresses of the sockets in the output
// of `ss -tinH state established` that are MPTCP subflows: a line with
// Recv-Q, Send-Q, local and remote address, then a line of TCP
// information with tcp-ulp-mptcp.
func subflowLocals(out string) []string {
	var locals []string
	lines := strings.Split(out, "\n")
	for i := 0; i+1 < len(lines); i++ {
		f := strings.Fields(lines[i])
		if len(f) < 4 || !strings.Contains(lines[i+1], "tcp-ulp-mptcp") {
			continue
		}
		// 10.102.0.2%wan2:40941, [fd77:3::2]%c1:40183: a subflow bound
		// to its device.
		if i := strings.LastIndex(f[2], ":"); i > 0 {
			host, _, _ := strings.Cut(f[2][:i], "%")
			locals = append(locals, strings.Trim(host, "[]"))
		}
		i++
	}
	return locals
}

// ssCiphers are the AEAD ciphers the lab tests run shadowsocks-libev
// and braid with.
var ssCiphers = []string{"chacha20-ietf-poly1305", "aes-256-gcm", "aes-128-gcm"}

// startSSServers runs shadowsocks-libev's ss-server (MPTCP, TCP and UDP,
// the password ssPassword) in the lab's peer namespace, one per cipher
// of ssCiphers, the i-th on port(i).
func startSSServers(ctx context.Context, t *testing.T, l *lab.Lab, port func(i int) int) {
	t.Helper()
	for i, cipher := range ssCiphers {
		if err := l.Start(ctx, lab.Process{Name: "ss-" + cipher, Role: lab.RolePeer, Command: []string{
			"ss-server", "--mptcp", "-u", "-s", lab.PeerV4, "-p", strconv.Itoa(port(i)), "-k", ssPassword, "-m", cipher}}); err != nil {
			t.Fatal(err)
		}
	}
}

// perCipher runs f as a subtest for each of ssCiphers (the i-th), with
// braid's peer running that cipher and the key "key-CIPHER" while f
// runs; n.t is the subtest's.
func (n *peerNet) perCipher(t *testing.T, f func(t *testing.T, i int, cipher, key string)) {
	for i, cipher := range ssCiphers {
		t.Run(cipher, func(t *testing.T) {
			n.t = t
			key := "key-" + cipher
			d := n.startPeer(cipher, key)
			defer d.stop(syscall.SIGTERM)
			f(t, i, cipher, key)
		})
	}
}

// ssCounter is the number that re's first group matches in a socket's
// information from `ss -ti`, 0 where ss leaves it out.
func ssCounter(re *regexp.Regexp, info string) int64 {
	m := re.FindStringSubmatch(info)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseInt(m[1], 10, 64)
	return v
}

// flushLANNeighbours empties the LAN client's neighbour cache: the probe
// before braid converged may have left its entry for its gateway FAILED.
func flushLANNeighbours(t *testing.T, l *lab.Lab) {
	t.Helper()
	if _, err := l.Run(context.Background(), lab.RoleLAN, "ip", "neigh", "flush", "all"); err != nil {
		t.Fatal(err)
	}
}

// steeredLAN waits until the box's proxy runs with its steering in
// place (what names that for a failure), then flushes the LAN client's
// neighbours.
func steeredLAN(t *testing.T, l *lab.Lab, d *daemon, what string) {
	t.Helper()
	d.within(60*time.Second, what, steering)
	flushLANNeighbours(t, l)
}

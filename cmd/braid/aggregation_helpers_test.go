package main

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/braid-router/braid/internal/nstest"
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

// listenTCP runs, in namespace ns, a TCP server on addr that hands each
// connection to handle in a goroutine of its own and closes it after.
func listenTCP(t *testing.T, ns string, addr netip.AddrPort, handle func(net.Conn)) {
	t.Helper()
	var ln net.Listener
	nstest.Do(t, ns, func() (err error) {
		ln, err = net.Listen("tcp", addr.String())
		return err
	})
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
}

package main

import (
	"strconv"
	"testing"

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

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/lab"
)

// ssSocket is one line of `ss -nH` with its state: a socket, its ends,
// and whether a process holds it (with -p).
type ssSocket struct {
	state, local, remote string
	recvQ                int64
	owned                bool
}

// sockets lists the sockets `ss -nHp args...` shows in role's namespace
// (args: -t for TCP, -M for Multipath TCP, and a filter).
func sockets(t *testing.T, l *lab.Lab, role lab.Role, args ...string) []ssSocket {
	t.Helper()
	out, err := l.Run(context.Background(), role, "ss", append([]string{"-nHp"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var socks []ssSocket
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		q, _ := strconv.ParseInt(f[1], 10, 64)
		socks = append(socks, ssSocket{state: f[0], recvQ: q, local: f[3], remote: f[4], owned: strings.Contains(line, "users:(")})
	}
	return socks
}

// TestAggregationEarlyClose: a LAN client closes a download early, with
// a byte still unread (its kernel resets the connection), while the
// box's Multipath TCP connection to the peer holds nothing unread: the
// server paused. Then the server goes on sending, as a download server
// does until its connection breaks. The whole chain is torn down at once:
// the box resets its connection to the peer (MP_FASTCLOSE, as SO_LINGER 0
// asks) rather than closing it, which the kernel would leave without an
// owner in FIN-WAIT-2, taking what the peer still sends for
// net.mptcp.close_timeout (60 s); the peer resets its connection to the
// server. So the box holds no MPTCP socket to the peer without a
// process, the peer no connection to the server, the server none from
// the peer; and what the server could send after the close is a few
// buffers' worth, not what the uplinks carry into an orphaned socket for
// a minute.
//
// The lab's download service never pauses: whether the box's socket has
// unread data when the relay closes it is then a race, and with unread
// data the kernel fast-closes by itself; hence a server of the test's
// own, in the core.
func TestAggregationEarlyClose(t *testing.T) {
	l := labWithPeer(t)
	b := labBoxOf(t, l)
	d := b.startDaemon("-f", writeSpec(t, labAggregationSpec(t, l)))
	d.within(60*time.Second, "the proxy running and its steering in place", steering)
	if _, err := l.Run(context.Background(), lab.RoleLAN, "ip", "neigh", "flush", "all"); err != nil {
		t.Fatal(err)
	}
	whoami := net.JoinHostPort(lab.ServerV4, strconv.Itoa(lab.WhoamiPort))
	e2eWait(t, l, nil, "the LAN's connections to "+whoami+" to go through the peer", func() bool {
		seen, _ := ask(l, lab.RoleLAN, whoami)
		ap, err := netip.ParseAddrPort(seen)
		return err == nil && ap.Addr().String() == lab.PeerV4
	})

	// The server: a first part of the download, a pause until the client
	// has closed, then as much as the connection takes, until it breaks.
	const first = 8 << 20
	var ln net.Listener
	if err := l.Do(lab.RoleInet, func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(lab.ServerV4, "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	server := ln.Addr().String()
	closed := make(chan struct{})
	type result struct {
		after int64 // bytes written after the close
		err   error
	}
	served := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- result{err: err}
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		for n := 0; n < first; n += len(buf) {
			if _, err := c.Write(buf); err != nil {
				served <- result{err: fmt.Errorf("the first part: %w", err)}
				return
			}
		}
		<-closed
		// Then 64 KiB every 10 ms, some 6 MB/s, under what the uplinks
		// carry: what gets written before the teardown reaches the
		// server stays small, while an orphaned socket takes its
		// receive buffer's worth whatever the teardown's speed.
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var res result
		for range tick.C {
			// A bound on a hang: the kernel gives up an orphaned
			// MPTCP socket after a minute.
			c.SetWriteDeadline(time.Now().Add(2 * time.Minute))
			var n int
			n, res.err = c.Write(buf)
			res.after += int64(n)
			if res.err != nil {
				break
			}
		}
		served <- res
	}()

	var client net.Conn
	if err := l.Do(lab.RoleLAN, func() error {
		var err error
		client, err = net.DialTimeout("tcp", server, 10*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	client.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := io.ReadFull(client, make([]byte, first-1)); err != nil {
		t.Fatalf("the download's first part: %v", err)
	}

	peer := netip.AddrPortFrom(netip.MustParseAddr(lab.PeerV4), lab.PeerPort).String()
	// The box's MPTCP sockets to the peer (its peer health probes are
	// plain TCP).
	toPeer := func() []ssSocket {
		var socks []ssSocket
		for _, s := range sockets(t, l, lab.RoleBox, "-M") {
			if s.remote == peer {
				socks = append(socks, s)
			}
		}
		return socks
	}
	var download []ssSocket
	for _, s := range toPeer() {
		if s.owned && s.state == "ESTAB" {
			download = append(download, s)
		}
	}
	if len(download) == 0 {
		t.Fatalf("no MPTCP connection from the box to the peer during the download: %v", toPeer())
	}
	// The last byte reached the client: the box has read all the server
	// sent so far.
	e2eWait(t, l, nil, "the download's last byte in the client's receive queue", func() bool {
		for _, s := range sockets(t, l, lab.RoleLAN, "-t", "dst", server) {
			if s.recvQ == 1 {
				return true
			}
		}
		return false
	})
	client.Close()
	close(closed)

	// Bounds on a hang on a busy machine, not measurements.
	var left []string
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(2 * time.Minute); !cond(); time.Sleep(200 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("timed out waiting for %s: %v", what, left)
			}
		}
	}
	var orphan []ssSocket
	waitFor("the box to hold no ownerless MPTCP socket to the peer, nor the download's", func() bool {
		left = nil
		for _, s := range toPeer() {
			if !s.owned || slices.ContainsFunc(download, func(d ssSocket) bool { return d.local == s.local }) {
				left = append(left, fmt.Sprintf("%+v", s))
			}
			// Nothing was unread at the close: data queued on a
			// socket without an owner came after it.
			if !s.owned && s.recvQ > 0 && orphan == nil {
				orphan = append(orphan, s)
			}
		}
		return len(left) == 0
	})
	if orphan != nil {
		t.Errorf("the box's MPTCP socket to the peer, closed, took data: %+v", orphan)
	}
	waitFor("the peer to hold no connection to the server", func() bool {
		left = nil
		for _, s := range sockets(t, l, lab.RolePeer, "-t", "state", "all", "dst", server) {
			left = append(left, fmt.Sprintf("%+v", s))
		}
		return len(left) == 0
	})
	var res result
	select {
	case res = <-served:
	case <-time.After(3 * time.Minute):
		t.Fatal("the server still writing 3 minutes after the close")
	}
	waitFor("the server to hold no connection from the peer", func() bool {
		left = nil
		for _, s := range sockets(t, l, lab.RoleInet, "-t", "state", "all", "src", server, "dst", lab.PeerV4) {
			left = append(left, fmt.Sprintf("%+v", s))
		}
		return len(left) == 0
	})
	t.Logf("after the close, the server wrote %d bytes, then: %v", res.after, res.err)
	if res.err == nil || os.IsTimeout(res.err) {
		t.Errorf("the server's connection did not break: %v", res.err)
	}
	// The server's send buffer and the peer's receive buffer are the
	// most it can write after the close; the box's orphaned socket would
	// take tens of megabytes.
	const bound = 8 << 20
	if res.after > bound {
		t.Errorf("the server wrote %d bytes after the LAN client closed, want under %d", res.after, bound)
	}
}

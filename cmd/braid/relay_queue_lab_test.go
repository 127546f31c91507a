package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/tcpqueue"
	"github.com/braid-router/braid/lab"
)

// unsentSlack is what a socket may hold past tcpqueue.Unsent: the write
// that found it under the mark goes in whole (a relay chunk, 16 KiB and
// its AEAD overhead), rounded up to the kernel's segments.
const unsentSlack = 64 << 10

// ssNotsent is a TCP socket's tcpi_notsent_bytes in ss -ti (absent: 0).
var ssNotsent = regexp.MustCompile(`\bnotsent:(\d+)`)

// sockQueue is what the kernel holds on one socket of a namespace.
type sockQueue struct {
	local, remote string
	recvQ, sendQ  int64
	// unsent is written but not yet sent: for TCP, tcpi_notsent_bytes;
	// for an MPTCP socket, write_seq - snd_nxt at the connection level
	// (mptcpDiag.unsent).
	unsent int64
	info   string
}

func (q sockQueue) String() string {
	return fmt.Sprintf("%s->%s Recv-Q %d Send-Q %d unsent %d [%s]", q.local, q.remote, q.recvQ, q.sendQ, q.unsent, strings.TrimSpace(q.info))
}

// socketQueues lists the established sockets of role's namespace, TCP
// (including MPTCP subflows, from ss -tnmi) or, with mptcp, MPTCP (from
// the kernel's sock_diag: see mptcpDiag), with their queues.
func socketQueues(t *testing.T, l *lab.Lab, role lab.Role, mptcp bool) []sockQueue {
	t.Helper()
	var qs []sockQueue
	if mptcp {
		var socks []mptcpDiag
		err := l.Do(role, func() error {
			var err error
			socks, err = mptcpSockets()
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		for _, d := range socks {
			qs = append(qs, sockQueue{
				local: d.local.String(), remote: d.remote.String(),
				recvQ: int64(d.rqueue), sendQ: int64(d.wqueue), unsent: d.unsent(),
				info: fmt.Sprintf("write_seq:%x snd_una:%x bytes_sent:%d bytes_acked:%d", d.writeSeq, d.sndUna, d.bytesSent, d.bytesAcked),
			})
		}
		return qs
	}
	out, err := l.Run(context.Background(), role, "ss", "-tnmiH", "state", "established")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out, "\n")
	for i := 0; i < len(lines); i++ {
		f := strings.Fields(lines[i])
		if len(f) < 4 || strings.HasPrefix(lines[i], "\t") || strings.HasPrefix(lines[i], " ") {
			continue
		}
		recv, err1 := strconv.ParseInt(f[0], 10, 64)
		send, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		q := sockQueue{local: f[2], remote: f[3], recvQ: recv, sendQ: send}
		// The socket's information follows on indented lines.
		for i+1 < len(lines) && (strings.HasPrefix(lines[i+1], "\t") || strings.HasPrefix(lines[i+1], " ")) {
			i++
			q.info += lines[i]
		}
		q.unsent = ssCounter(ssNotsent, q.info)
		qs = append(qs, q)
	}
	return qs
}

// stallEnd is one end of a stalled connection: it writes as fast as it
// can and counts what the kernel took, or holds the connection without
// reading.
type stallEnd struct {
	wrote atomic.Int64
	err   atomic.Value
}

// pour writes to c until it fails.
func (e *stallEnd) pour(c net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Write(buf)
		e.wrote.Add(int64(n))
		if err != nil {
			e.err.Store(err)
			return
		}
	}
}

// blocked waits until e's writes have stopped making progress, a sign
// that every queue between it and the reader that stopped is full: the
// count unchanged through ten polls in a row, after at least least
// bytes. Not a timing assertion: waiting longer only fills queues more.
func (e *stallEnd) blocked(t *testing.T, what string, least int64) {
	t.Helper()
	last, same := int64(-1), 0
	for end := time.Now().Add(2 * time.Minute); same < 10; time.Sleep(300 * time.Millisecond) {
		if err, ok := e.err.Load().(error); ok {
			t.Fatalf("%s: the writer failed after %d bytes: %v", what, e.wrote.Load(), err)
		}
		n := e.wrote.Load()
		if n == last && n >= least {
			same++
		} else {
			same = 0
		}
		last = n
		if time.Now().After(end) {
			t.Fatalf("%s: the writer is still writing after 2 minutes (%d bytes)", what, n)
		}
	}
	t.Logf("%s: the writer blocked after %d bytes", what, last)
}

// TestRelayQueuesBounded: braid on both ends, in the lab. A proxied
// connection is stalled each way - a LAN client that stops reading a
// download, a server that stops reading an upload - and once the writer
// at the far end is blocked, the queues of every socket in the box and
// the peer namespaces (the relays' LAN, MPTCP and destination sockets)
// are read from the kernel (ss -tmi; sock_diag for MPTCP): none of those
// braid writes to holds more than tcpqueue.Unsent bytes written but not
// yet sent (plus a chunk). MPTCP subflows, which the kernel fills, are
// logged. The receive queues, left to autotuning, are logged.
func TestRelayQueuesBounded(t *testing.T) {
	l := labWithPeer(t)
	b := labBoxOf(t, l)
	d := b.startDaemon("-f", writeSpec(t, labAggregationSpec(t, l)))
	steeredLAN(t, l, d, "the proxy running and its steering in place")
	whoami := net.JoinHostPort(lab.ServerV4, strconv.Itoa(lab.WhoamiPort))
	e2eWait(t, l, nil, "the LAN's connections to go through the peer", func() bool {
		seen, _ := ask(l, lab.RoleLAN, whoami)
		ap, err := netip.ParseAddrPort(seen)
		return err == nil && ap.Addr().String() == lab.PeerV4
	})

	// stalled opens a connection from the LAN client to a server of the
	// test's own in the Internet's namespace; the client (upload) or
	// the server (download) pours, the other end never reads.
	stalled := func(t *testing.T, upload bool) *stallEnd {
		var ln net.Listener
		err := l.Do(lab.RoleInet, func() error {
			var err error
			ln, err = net.Listen("tcp4", net.JoinHostPort(lab.ServerV4, "0"))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		var c net.Conn
		err = l.Do(lab.RoleLAN, func() error {
			var err error
			c, err = net.DialTimeout("tcp4", ln.Addr().String(), 10*time.Second)
			return err
		})
		if err != nil {
			t.Fatalf("a LAN connection to %s: %v", ln.Addr(), err)
		}
		t.Cleanup(func() { c.Close() })
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		e := &stallEnd{}
		if upload {
			go e.pour(c)
		} else {
			go e.pour(s)
		}
		return e
	}

	for _, c := range []struct {
		name   string
		upload bool
	}{
		{"download, the LAN client not reading", false},
		{"upload, the server not reading", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := stalled(t, c.upload)
			// More than the bounded queues hold: the receive queues
			// of the chain took their share.
			e.blocked(t, c.name, 4*tcpqueue.Unsent)
			bound := int64(tcpqueue.Unsent + unsentSlack)
			for _, role := range []lab.Role{lab.RoleBox, lab.RolePeer} {
				for _, mptcp := range []bool{false, true} {
					kind := "TCP"
					if mptcp {
						kind = "MPTCP"
					}
					for _, q := range socketQueues(t, l, role, mptcp) {
						if mptcp || q.recvQ > 0 || q.sendQ > 0 || q.unsent > 0 {
							t.Logf("%s %s: %v", role, kind, q)
						}
						if q.unsent < 0 {
							t.Errorf("%s: a %s socket's counters do not add up (unsent %d): %v", role, kind, q.unsent, q)
						}
						// An MPTCP subflow is written by the kernel's
						// scheduler, not by braid: it takes what the
						// connection hands it up to its own send buffer,
						// and holds it unsent while its window is shut
						// (a loss, under load). The connection's queue,
						// which braid bounds, is checked with the MPTCP
						// sockets.
						if q.unsent > bound && !strings.Contains(q.info, "tcp-ulp-mptcp") {
							t.Errorf("%s: a %s socket holds %d bytes unsent, over %d: %v", role, kind, q.unsent, bound, q)
						}
					}
				}
			}
		})
	}
}

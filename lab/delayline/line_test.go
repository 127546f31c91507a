package delayline

import (
	"context"
	"encoding/binary"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// seqpacketPair returns the two ends of a packet-preserving socket pair,
// pollable like a TAP device: the line's end and the peer's.
func seqpacketPair(t *testing.T) (line, peer *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	line, peer = os.NewFile(uintptr(fds[0]), "line"), os.NewFile(uintptr(fds[1]), "peer")
	t.Cleanup(func() { peer.Close() })
	return line, peer
}

// runLine runs a line on f until the test ends.
func runLine(t *testing.T, f *os.File, delay time.Duration) *Line {
	t.Helper()
	l := newLine(f, delay)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
		l.Close()
	})
	return l
}

// TestLineDelaysInOrder: every packet comes back whole, in order, and not
// before the delay.
func TestLineDelaysInOrder(t *testing.T) {
	f, peer := seqpacketPair(t)
	const delay = 50 * time.Millisecond
	l := runLine(t, f, delay)
	const n = 500
	peer.SetDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	for i := range n {
		pkt := make([]byte, 8+i%1400)
		binary.BigEndian.PutUint64(pkt, uint64(i))
		if _, err := peer.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, MaxPacket)
	for i := range n {
		m, err := peer.Read(buf)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if i == 0 {
			if waited := time.Since(start); waited < delay {
				t.Errorf("the first packet came back after %v, before the delay %v", waited, delay)
			}
		}
		if got := binary.BigEndian.Uint64(buf); got != uint64(i) || m != 8+i%1400 {
			t.Fatalf("packet %d: got packet %d of %d bytes, want %d bytes", i, got, m, 8+i%1400)
		}
	}
	// The line counts a packet once its write returned, which may be
	// after the peer read it: wait for the count, not on it.
	deadline := time.Now().Add(30 * time.Second)
	for l.Stats.Packets.Load() != n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := l.Stats.Packets.Load(); got != n {
		t.Errorf("Stats.Packets = %d, want %d", got, n)
	}
}

// TestLineAllocatesNothing: a packet's way through the line allocates
// nothing, in the line or around it.
func TestLineAllocatesNothing(t *testing.T) {
	f, peer := seqpacketPair(t)
	runLine(t, f, time.Microsecond)
	pkt, buf := make([]byte, 1500), make([]byte, MaxPacket)
	peer.SetDeadline(time.Now().Add(60 * time.Second))
	allocs := testing.AllocsPerRun(2000, func() {
		if _, err := peer.Write(pkt); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.Read(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per packet, want 0", allocs)
	}
}

package delayline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxPacket is the most a read from a TAP device returns: a virtio-net
// header and an Ethernet frame carrying a 64 KiB segmentation offload
// packet.
const MaxPacket = 65536 + 256

// Queue sizes of a direction: the buffer a link of several hundred Mbit/s
// needs for a delay of a few tens of milliseconds, with room for small
// packets (acknowledgements).
const (
	QueueBytes   = 16 << 20
	QueuePackets = 1 << 16
)

// Stats counts what a Line did.
type Stats struct {
	// Packets and Bytes were written back after their delay.
	Packets, Bytes atomic.Uint64
	// Dropped were refused by the full queue, and WriteErrors failed to
	// be written back.
	Dropped, WriteErrors atomic.Uint64
}

// Line is one direction of a delay line: packets the kernel sends out of
// a TAP device are written back into it Delay later, in order. The lab's
// nftables rules steer a link's traffic out of the TAP device and forward
// what comes back into it on to the link.
type Line struct {
	// Delay is how long each packet is held.
	Delay time.Duration
	// Stats counts packets.
	Stats Stats

	f *os.File
	q *Queue
	// scratch receives the packets the full queue drops.
	scratch []byte

	// rc reads f through readFn, made once: os.File.Read wraps every
	// error, a read deadline's expiry included, in a new PathError.
	rc     syscall.RawConn
	readFn func(fd uintptr) bool
	rbuf   []byte
	rn     int
	rerr   error
}

// rawReader prepares read.
func (l *Line) rawReader() error {
	rc, err := l.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("delay line: %s: %w", l.f.Name(), err)
	}
	l.rc = rc
	l.readFn = func(fd uintptr) bool {
		l.rn, l.rerr = unix.Read(int(fd), l.rbuf)
		return l.rerr != unix.EAGAIN
	}
	return nil
}

// read reads one packet into buf, waiting for it until the read deadline.
func (l *Line) read(buf []byte) (int, error) {
	l.rbuf = buf
	if err := l.rc.Read(l.readFn); err != nil {
		return 0, err
	}
	if l.rerr != nil {
		return 0, l.rerr
	}
	if l.rn == 0 {
		return 0, io.EOF // a TAP device never reads empty; a socket's peer closed
	}
	return l.rn, nil
}

// OpenTAP creates the TAP device name in the network namespace of the
// calling thread (lock it, see internal/netns) and returns a Line on it.
// The device carries a virtio-net header, so that segmentation offload
// packets pass whole; the line writes back exactly what it read. The
// device goes when the Line is closed. The caller brings it up.
func OpenTAP(name string, delay time.Duration) (*Line, error) {
	if len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("delay line: TAP name %q too long", name)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("delay line: /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("delay line: %w", err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("delay line: TAP %s: TUNSETIFF: %w", name, err)
	}
	offload := unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, offload); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("delay line: TAP %s: TUNSETOFFLOAD: %w", name, err)
	}
	// The virtio-net header is 10 bytes unless told otherwise; say so, as
	// the line passes it through without reading it.
	hdr := int32(10)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETVNETHDRSZ, uintptr(unsafe.Pointer(&hdr))); errno != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("delay line: TAP %s: TUNSETVNETHDRSZ: %w", name, errno)
	}
	return newLine(os.NewFile(uintptr(fd), name), delay), nil
}

func newLine(f *os.File, delay time.Duration) *Line {
	return &Line{Delay: delay, f: f, q: NewQueue(QueueBytes, QueuePackets), scratch: make([]byte, MaxPacket)}
}

// Close closes the device (and removes it).
func (l *Line) Close() error { return l.f.Close() }

// Run carries packets until ctx is done or the device fails. One
// goroutine does everything: it reads with a deadline at the oldest
// packet's due time and writes back what is due between reads, so
// nothing is shared and nothing is allocated per packet.
func (l *Line) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { l.f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := l.rawReader(); err != nil {
		return err
	}
	base := time.Now()
	delay := int64(l.Delay)
	var deadline int64 = -1 // none set
	for {
		now := int64(time.Since(base))
		for pkt, due, ok := l.q.Peek(); ok && due <= now; pkt, due, ok = l.q.Peek() {
			if _, err := l.f.Write(pkt); err != nil {
				l.Stats.WriteErrors.Add(1)
			} else {
				l.Stats.Packets.Add(1)
				l.Stats.Bytes.Add(uint64(len(pkt)))
			}
			l.q.Pop()
		}
		next := int64(0)
		if _, due, ok := l.q.Peek(); ok {
			next = due
		}
		if next != deadline {
			var t time.Time
			if next != 0 {
				t = base.Add(time.Duration(next))
			}
			l.f.SetReadDeadline(t)
			deadline = next
		}
		// After the deadline is set: a cancellation after this check
		// sets it in the past, after this.
		if ctx.Err() != nil {
			return ctx.Err()
		}
		buf := l.q.Reserve(MaxPacket)
		into := buf
		if into == nil {
			into = l.scratch
		}
		n, err := l.read(into)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("delay line: %s: %w", l.f.Name(), err)
		}
		if buf == nil {
			l.Stats.Dropped.Add(1)
			continue
		}
		// Never 0: Peek's due times are positive, as "none" is 0.
		l.q.Commit(buf, n, max(int64(time.Since(base))+delay, 1))
	}
}

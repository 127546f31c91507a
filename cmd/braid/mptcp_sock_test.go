package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/internal/netns"
)

// MPTCP socket option (linux/mptcp.h) and the sizes of its structures.
const (
	mptcpSubflowAddrs   = 3
	sizeofSubflowData   = 16  // struct mptcp_subflow_data
	sizeofSubflowAddrs  = 256 // struct mptcp_subflow_addrs: two sockaddr_storage
	maxSubflowsReported = 16
)

// subflow is one subflow of an MPTCP connection: its local and remote
// addresses.
type subflow struct {
	Local, Remote netip.AddrPort
}

// subflows asks the kernel for the subflows of an MPTCP connection
// (getsockopt MPTCP_SUBFLOW_ADDRS), sorted by local address.
func subflows(c *net.TCPConn) ([]subflow, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, sizeofSubflowData+maxSubflowsReported*sizeofSubflowAddrs)
	ne := binary.NativeEndian
	ne.PutUint32(buf[0:], sizeofSubflowData)
	ne.PutUint32(buf[12:], sizeofSubflowAddrs)
	size := uint32(len(buf))
	var serr error
	err = raw.Control(func(fd uintptr) {
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_MPTCP, mptcpSubflowAddrs,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		if e != 0 {
			serr = e
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return nil, fmt.Errorf("getsockopt MPTCP_SUBFLOW_ADDRS: %w", err)
	}
	n, elem := int(ne.Uint32(buf[4:])), int(ne.Uint32(buf[12:]))
	if elem == 0 {
		elem = sizeofSubflowAddrs
	}
	var out []subflow
	for i := 0; i < n && i < maxSubflowsReported; i++ {
		off := sizeofSubflowData + i*elem
		if off+elem > int(size) || elem < sizeofSubflowAddrs {
			break
		}
		out = append(out, subflow{Local: sockaddr(buf[off : off+128]), Remote: sockaddr(buf[off+128 : off+256])})
	}
	slices.SortFunc(out, func(a, b subflow) int { return a.Local.Compare(b.Local) })
	return out, nil
}

// sockaddr decodes a struct sockaddr_in or sockaddr_in6.
func sockaddr(b []byte) netip.AddrPort {
	port := binary.BigEndian.Uint16(b[2:4])
	switch binary.NativeEndian.Uint16(b[0:2]) {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port)
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), port)
	}
	return netip.AddrPort{}
}

// sink is an MPTCP listener in a namespace that counts the bytes it
// receives on every connection.
type sink struct {
	ln       net.Listener
	received atomic.Int64
	wg       sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
}

// close stops the sink: the listener and every connection it accepted.
func (s *sink) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// listenMPTCP starts a sink on addr inside namespace ns. The socket stays
// in ns whichever thread serves it.
func listenMPTCP(t *testing.T, ns, addr string) *sink {
	t.Helper()
	s := &sink{}
	err := netns.Do(ns, func() error {
		var lc net.ListenConfig
		lc.SetMultipathTCP(true)
		var err error
		s.ln, err = lc.Listen(context.Background(), "tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", ns, err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					s.received.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

// dialMPTCP connects to addr from inside namespace ns over MPTCP, and
// fails the test unless the connection really is MPTCP.
func dialMPTCP(t *testing.T, ns, addr string) *net.TCPConn {
	t.Helper()
	var c net.Conn
	err := netns.Do(ns, func() error {
		d := net.Dialer{Timeout: 5 * time.Second}
		d.SetMultipathTCP(true)
		var err error
		c, err = d.Dial("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, ns, err)
	}
	tc := c.(*net.TCPConn)
	t.Cleanup(func() { tc.Close() })
	if ok, err := tc.MultipathTCP(); !ok || err != nil {
		t.Fatalf("the connection to %s fell back to plain TCP (%v)", addr, err)
	}
	return tc
}

// pump writes to c until the returned stop is called (the test's end
// calls it too) or a write fails.
func pump(t *testing.T, c *net.TCPConn) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 32<<10)
		for {
			select {
			case <-quit:
				return
			default:
			}
			c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.Write(buf); err != nil && !isTimeout(err) {
				return
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); <-done }) }
	t.Cleanup(stop)
	return stop
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rxBytes is the number of bytes an interface of a namespace received,
// from `ip -s -j link show`.
func rxBytes(t *testing.T, ns, dev string) int64 {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev).Output()
	if err != nil {
		t.Fatalf("ip -n %s -s -j link show dev %s: %v", ns, dev, err)
	}
	var links []struct {
		Stats64 struct {
			RX struct {
				Bytes int64 `json:"bytes"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		t.Fatalf("decode %s: %v", out, err)
	}
	return links[0].Stats64.RX.Bytes
}

// waitFor polls cond every 100 ms until it holds or the timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	for end := time.Now().Add(timeout); ; {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ssSubflows is `ss -tni` in a namespace, for failure messages.
func ssSubflows(ns string) string {
	out, _ := exec.Command("ip", "netns", "exec", ns, "ss", "-tni").CombinedOutput()
	msk, _ := exec.Command("ip", "netns", "exec", ns, "ss", "-Mni").CombinedOutput()
	return strings.TrimSpace(string(out)) + "\n" + strings.TrimSpace(string(msk))
}

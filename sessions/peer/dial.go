package peer

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/braid-router/braid/sessions/peer/socksaddr"
)

// refusedError is a destination the peer does not dial.
type refusedError struct {
	dst netip.AddrPort
	why string
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("destination %s refused: %s (not in allowLocal)", e.dst, e.why)
}

// dialer dials the destinations a stream asks for.
type dialer struct {
	allow map[netip.AddrPort]bool
	// timeout bounds a dial.
	timeout time.Duration
}

func newDialer(allowLocal []string, timeout time.Duration) (*dialer, error) {
	d := &dialer{allow: map[netip.AddrPort]bool{}, timeout: timeout}
	for _, s := range allowLocal {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return nil, fmt.Errorf("allowLocal %q: %w", s, err)
		}
		d.allow[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())] = true
	}
	return d, nil
}

// check refuses a destination that is not a remote unicast address,
// unless allowLocal lists it. What the address alone says comes first;
// then the kernel's route to it, looked up in the namespace of the
// calling thread (the dialing socket's): a route of type local is one of
// the peer's own addresses, whatever its link.
func (d *dialer) check(dst netip.AddrPort) error {
	a := dst.Addr().Unmap()
	dst = netip.AddrPortFrom(a, dst.Port())
	if d.allow[dst] {
		return nil
	}
	switch {
	case !a.IsValid() || a.IsUnspecified():
		return &refusedError{dst, "unspecified address"}
	case a.IsLoopback():
		return &refusedError{dst, "loopback"}
	case a.IsLinkLocalUnicast():
		return &refusedError{dst, "link-local"}
	case a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return &refusedError{dst, "not unicast"}
	}
	typ, ok := routeType(a)
	if !ok {
		return nil // no route: the dial fails on its own
	}
	switch typ {
	case unix.RTN_UNICAST:
		return nil
	case unix.RTN_LOCAL:
		return &refusedError{dst, "one of the peer's own addresses"}
	}
	return &refusedError{dst, "not unicast"}
}

// routeType is the type of the kernel's route to a, in the namespace of
// the calling thread; false when there is none. The netlink socket is
// opened here, on the calling thread, so it asks that namespace; the
// request itself runs on a goroutine of its own because netlink's receive
// keeps a 64 KiB buffer on its caller's stack: on the relay's goroutine it
// would leave every relayed connection with a 128 KiB stack for its whole
// life.
func routeType(a netip.Addr) (int, bool) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return 0, false
	}
	defer h.Close()
	typ := make(chan int, 1)
	go func() {
		routes, err := h.RouteGet(a.AsSlice())
		if err != nil || len(routes) == 0 {
			typ <- -1
			return
		}
		typ <- routes[0].Type
	}()
	t := <-typ
	return t, t >= 0
}

// dial connects to dst in its own family (a name: whichever its addresses
// have), refusing local destinations: every address the dial tries is
// checked from its socket's namespace, after name resolution, so a name
// that resolves to a local address is refused too.
func (d *dialer) dial(ctx context.Context, dst socksaddr.Addr) (*net.TCPConn, error) {
	network := "tcp"
	switch {
	case dst.IP.Is4() || dst.IP.Is4In6():
		network = "tcp4"
		dst.IP = dst.IP.Unmap()
	case dst.IP.IsValid():
		network = "tcp6"
	}
	nd := net.Dialer{
		Timeout: d.timeout,
		ControlContext: func(_ context.Context, _, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("destination %q: %w", address, err)
			}
			return d.check(ap)
		},
	}
	c, err := nd.DialContext(ctx, network, dst.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

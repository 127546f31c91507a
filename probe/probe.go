package probe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// Prober checks targets. The zero value probes from wherever the routing
// table says, with no binding. A Prober is safe for concurrent use and
// holds no state between probes: each probe has a socket of its own.
type Prober struct {
	// Interface, when set, binds every probe's socket to this link
	// (SO_BINDTODEVICE): requests leave by it, whatever the routing table
	// prefers, and only what arrives on it is an answer.
	Interface string
	// Sources are the addresses probes leave from: a probe binds to the
	// first one of its target's family. When Sources is set and has no
	// address of a target's family, probing that target fails: leaving
	// from another address would check another path (an uplink without
	// IPv6 cannot answer for an IPv6 target). Empty, the kernel picks.
	// A TCP target named by a host name is resolved by the system's
	// resolver, which binds to neither.
	Sources []netip.Addr
	// RefusedAnswers makes a refused TCP connection count as an answer.
	// A reset proves the path to the far end works, which is what an
	// uplink's health asks; a management probe asks whether the service
	// accepts, so by default only a completed handshake answers.
	RefusedAnswers bool
}

// Probe checks t once: it sends one request and waits for the answer
// until ctx ends. It returns nil if t answered, else why not.
func (p *Prober) Probe(ctx context.Context, t Target) error {
	var err error
	switch t.Kind {
	case ICMP:
		err = p.icmp(ctx, t)
	case TCP:
		err = p.tcp(ctx, t)
	case DNS:
		err = p.dns(ctx, t)
	default:
		err = fmt.Errorf("unknown kind %q", t.Kind)
	}
	if err != nil {
		return fmt.Errorf("probe %s: %w", t, err)
	}
	return nil
}

// source returns the address a probe to dst leaves from: the first of
// p.Sources in dst's family, or the zero Addr (any) when Sources is empty.
func (p *Prober) source(dst netip.Addr) (netip.Addr, error) {
	if len(p.Sources) == 0 {
		return netip.Addr{}, nil
	}
	for _, s := range p.Sources {
		if s.Unmap().Is4() == dst.Is4() {
			return s.Unmap(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: no IPv%d source address to probe from (sources %v)", ErrNoSource, family(dst), p.Sources)
}

// ErrNoSource is wrapped by the error of a probe that was not sent because
// Sources has no address of its target's family: it says nothing of the
// path, only that the prober has no address to leave from yet.
var ErrNoSource = errors.New("not sent")

// Unsent reports whether err, a probe's error, means that the probe was
// never sent: no source address of its family (ErrNoSource), a source
// address the kernel does not have or cannot use yet (EADDRNOTAVAIL: a
// lease's address not yet added, an IPv6 address still tentative), or an
// Interface that is down or missing (ENETDOWN, ENODEV). Such an error is
// no evidence that the path is dead.
func Unsent(err error) bool {
	return errors.Is(err, ErrNoSource) || errors.Is(err, unix.EADDRNOTAVAIL) ||
		errors.Is(err, unix.ENETDOWN) || errors.Is(err, unix.ENODEV)
}

// control binds a socket to p.Interface before it is bound to an address
// or connected; it is a net.Dialer's or net.ListenConfig's Control.
func (p *Prober) control(_, _ string, c syscall.RawConn) error {
	if p.Interface == "" {
		return nil
	}
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.BindToDevice(int(fd), p.Interface)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("bind to interface %s: %w", p.Interface, err)
	}
	return nil
}

// family is 4 or 6.
func family(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

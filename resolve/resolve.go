// Package resolve answers braid's own name lookups (a peer given by host
// name, a git https or ssh URL) through the resolvers its uplinks learnt:
// the DNS servers of their DHCP leases (option 6) and of their router
// advertisements (RDNSS), each query leaving by the uplink that learnt the
// resolver. A box whose uplinks are all on DHCP has no /etc/resolv.conf
// worth the name; the kernel's own routes may also lead a query out of an
// uplink that cannot reach that ISP's resolver.
//
// The compiler lists the resolvers (compile: Desired.Resolvers), healthy
// uplinks first and unhealthy ones left out unless every uplink is
// unhealthy; the daemon hands each new list to a Dialer, which serves as
// the Dial of a net.Resolver. With no list (a box with static uplinks
// only), the Dialer dials what the system's configuration names.
package resolve

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Server is one resolver and the link its queries leave by.
type Server struct {
	Addr netip.AddrPort
	// Link is the uplink's interface ("" lets routing choose).
	Link string
	// Uplink names the uplink, for logs and status.
	Uplink string
}

func (s Server) String() string {
	if s.Uplink == "" {
		return s.Addr.String()
	}
	return s.Addr.String() + " (uplink " + s.Uplink + ")"
}

// Dialer dials braid's own DNS queries to the uplinks' resolvers. Its
// methods are safe for concurrent use. The zero value dials what the
// system's configuration names.
type Dialer struct {
	servers atomic.Pointer[[]Server]
	next    atomic.Uint64
}

// Set replaces the resolvers, in order of preference.
func (d *Dialer) Set(servers []Server) {
	s := append([]Server(nil), servers...)
	d.servers.Store(&s)
}

// Servers returns the resolvers in use.
func (d *Dialer) Servers() []Server {
	if p := d.servers.Load(); p != nil {
		return append([]Server(nil), (*p)...)
	}
	return nil
}

// Dial is a net.Resolver's Dial: it ignores the server the system's
// configuration names and connects to the next of the uplinks' resolvers
// instead (the Go resolver dials again for each attempt, so a dead
// resolver costs one attempt, and the next query starts with the next
// one), bound to its uplink's link. With no resolvers it dials address.
func (d *Dialer) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	servers := d.Servers()
	if len(servers) == 0 {
		var nd net.Dialer
		return nd.DialContext(ctx, network, address)
	}
	s := servers[int(d.next.Add(1)-1)%len(servers)]
	nd := net.Dialer{}
	if s.Link != "" {
		link := s.Link
		nd.Control = func(_, _ string, c syscall.RawConn) error { return bindToDevice(c, link) }
	}
	c, err := nd.DialContext(ctx, network, s.Addr.String())
	if err != nil {
		return nil, fmt.Errorf("resolver %s: %w", s, err)
	}
	return c, nil
}

// Resolver returns a net.Resolver whose queries go through d.
func (d *Dialer) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: d.Dial}
}

// bindToDevice binds a socket to a link (SO_BINDTODEVICE).
func bindToDevice(c syscall.RawConn, link string) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, link)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("bind to %s: %w", link, serr)
	}
	return nil
}

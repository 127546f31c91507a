package netlink

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	vnl "github.com/vishvananda/netlink"

	"github.com/braid-router/braid/reconcile/plan"
)

// SSHSession is the SSH connection a CLI runs in, from SSH_CONNECTION
// ("client port server port") or SSH_CLIENT ("client port port").
type SSHSession struct {
	Client netip.Addr
	// Server is the box's address the client reached; invalid if unknown.
	Server netip.Addr
}

// SSHFromEnv returns the SSH session of the environment, if any.
func SSHFromEnv(getenv func(string) string) (SSHSession, bool) {
	if f := strings.Fields(getenv("SSH_CONNECTION")); len(f) == 4 {
		c, err1 := netip.ParseAddr(f[0])
		s, err2 := netip.ParseAddr(f[2])
		if err1 == nil && err2 == nil {
			return SSHSession{Client: c.Unmap(), Server: s.Unmap()}, true
		}
	}
	if f := strings.Fields(getenv("SSH_CLIENT")); len(f) >= 1 {
		if c, err := netip.ParseAddr(f[0]); err == nil {
			return SSHSession{Client: c.Unmap()}, true
		}
	}
	return SSHSession{}, false
}

// SSHFromOS is SSHFromEnv for the process environment.
func SSHFromOS() (SSHSession, bool) { return SSHFromEnv(os.Getenv) }

// Path is how the box reaches the SSH client now.
type Path struct {
	// Link is the outgoing interface.
	Link string
	// Gateway is the next hop, invalid when the client is on-link.
	Gateway netip.Addr
}

// CutsSSH reports why applying p would cut the SSH session that currently
// leaves by path, or "" if nothing in the plan touches it. It is
// conservative: it names every change that removes or alters the session's
// address, takes its link down or changes its MAC address, or removes or
// re-points a braid route that covers the client on that link.
func CutsSSH(changes []plan.Change, s SSHSession, path Path) string {
	var why []string
	for _, c := range changes {
		switch r := c.Resource().(type) {
		case Addr:
			if s.Server.IsValid() && r.Prefix.Addr() == s.Server && c.Action != plan.Create {
				why = append(why, fmt.Sprintf("%s %s removes the address the session uses (%s)", c.Action, c.Address(), s.Server))
			}
		case Link:
			if r.Name != path.Link {
				continue
			}
			after, ok := c.After.(Link)
			before, _ := c.Before.(Link)
			switch {
			case c.Action == plan.Delete || (ok && !after.Up):
				why = append(why, fmt.Sprintf("%s %s may take down %s, which carries the session", c.Action, c.Address(), path.Link))
			case ok && after.MAC != "" && after.MAC != before.MAC:
				why = append(why, fmt.Sprintf("%s %s changes the MAC address of %s, which carries the session (its neighbours still send to the old one)", c.Action, c.Address(), path.Link))
			}
		case Route:
			before, ok := c.Before.(Route)
			if !ok || !before.Dst.Contains(s.Client) || before.Link != path.Link {
				continue
			}
			if after, ok := c.After.(Route); ok && after.Link == before.Link && after.Gateway == before.Gateway {
				continue
			}
			why = append(why, fmt.Sprintf("%s %s re-routes the path to the SSH client %s", c.Action, c.Address(), s.Client))
		}
	}
	return strings.Join(why, "; ")
}

// PathTo asks the kernel how it reaches the SSH client now.
func PathTo(s SSHSession) (Path, error) {
	opts := &vnl.RouteGetOptions{}
	if s.Server.IsValid() {
		opts.SrcAddr = net.IP(s.Server.AsSlice())
	}
	routes, err := vnl.RouteGetWithOptions(net.IP(s.Client.AsSlice()), opts)
	if err != nil {
		return Path{}, fmt.Errorf("route to %s: %w", s.Client, err)
	}
	if len(routes) == 0 {
		return Path{}, fmt.Errorf("no route to %s", s.Client)
	}
	var p Path
	if l, err := vnl.LinkByIndex(routes[0].LinkIndex); err == nil {
		p.Link = l.Attrs().Name
	}
	if gw, ok := netip.AddrFromSlice(routes[0].Gw); ok {
		p.Gateway = gw.Unmap()
	}
	return p, nil
}

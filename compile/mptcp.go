package compile

import (
	"fmt"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/drivers/mptcp"
	nl "github.com/braid-router/braid/drivers/netlink"
)

// mptcp compiles the uplinks' MPTCP roles into the MPTCP driver's
// resources (c.mptcpObjs): the limits, then one endpoint per current
// address (static, or from a lease) of each uplink whose mode is not off,
// bound to its interface; and the net.mptcp.* sysctls they need, as the netlink driver's. A spec without
// an MPTCP uplink compiles to none of these, so braid restores what it had
// changed. An uplink without mptcp (a spec without defaults) is off.
func (c *compiler) mptcp(spec *api.RouterSpec) error {
	uplinks, fullmesh := 0, false
	var eps []mptcp.Endpoint
	for i := range spec.Uplinks {
		u := &spec.Uplinks[i]
		m := u.MPTCP
		if m == nil || m.Mode == api.MPTCPOff {
			continue
		}
		flags := mptcp.FlagSubflow
		switch m.Mode {
		case api.MPTCPSubflow:
		case api.MPTCPBackup:
			flags |= mptcp.FlagBackup
		default:
			return fmt.Errorf("uplinks[%s].mptcp.mode: unknown mode %q", u.Name, m.Mode)
		}
		if m.Fullmesh {
			flags |= mptcp.FlagFullmesh
			fullmesh = true
		}
		uplinks++
		flags, ok := c.endpointFlags(u.Name, flags)
		if !ok {
			continue // withdrawn while the uplink is unhealthy (health.go)
		}
		// The uplink's addresses now: static, or its lease's once it
		// has one (the endpoint moves with the lease).
		for _, p := range c.uplinks[u.Name].addrs() {
			eps = append(eps, mptcp.Endpoint{Addr: p.Addr(), Dev: u.Interface, Flags: flags})
		}
	}
	if uplinks == 0 {
		return nil
	}
	if len(eps) > mptcp.MaxEndpoints {
		return fmt.Errorf("uplinks[].mptcp: %d MPTCP endpoints, more than the kernel's maximum of %d: set mode off on some uplinks", len(eps), mptcp.MaxEndpoints)
	}
	c.sysctls = append(c.sysctls,
		nl.Sysctl{Name: "net.mptcp.enabled", Value: "1"},
		// Endpoints are the in-kernel path manager's: not the userspace
		// one's (mptcpd).
		nl.Sysctl{Name: "net.mptcp.pm_type", Value: "0"})
	c.mptcpObjs = append(c.mptcpObjs, mptcpLimits(uplinks, fullmesh))
	for _, e := range eps {
		c.mptcpObjs = append(c.mptcpObjs, e)
	}
	return nil
}

// mptcpLimits are the path manager's limits for n MPTCP uplinks, each with
// at most one address per family (so at most n endpoints in a
// connection's family):
//
//   - add_addr_accepted = min(8, n): the box accepts as many addresses
//     announced by the peer as it has uplinks to reach them by;
//   - subflows = min(8, 2n-1): one connection (of one family) opens a
//     subflow from each endpoint but the one its first subflow already
//     uses (n-1), and one to each accepted announcement (n). A fullmesh
//     endpoint opens one to every peer address, so with any fullmesh
//     uplink, subflows is the kernel's maximum, 8.
//
// The figures count uplinks, not the addresses they hold now, so they do
// not change while an uplink waits for a lease.
func mptcpLimits(n int, fullmesh bool) mptcp.Limits {
	subflows := min(mptcp.MaxLimit, 2*n-1)
	if fullmesh {
		subflows = mptcp.MaxLimit
	}
	return mptcp.Limits{Subflows: uint32(subflows), AddAddrAccepted: uint32(min(mptcp.MaxLimit, n))}
}

func staticOf4(u *api.Uplink) *api.Static {
	if u.IPv4 == nil {
		return nil
	}
	return u.IPv4.Static
}

func staticOf6(u *api.Uplink) *api.Static {
	if u.IPv6 == nil {
		return nil
	}
	return u.IPv6.Static
}

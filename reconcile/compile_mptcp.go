package reconcile

import "github.com/braid-router/braid/api"

// mptcp compiles the uplinks' MPTCP roles into the MPTCP driver's
// resources (c.mptcpObjs): endpoints, limits and net.mptcp.* sysctls.
func (c *compiler) mptcp(spec *api.RouterSpec) error {
	return nil
}

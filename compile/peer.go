package compile

import (
	"cmp"

	"github.com/braid-router/braid/api"
	"github.com/braid-router/braid/drivers/mptcp"
	nl "github.com/braid-router/braid/drivers/netlink"
	"github.com/braid-router/braid/facts"
	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/reconcile/plan"
	"github.com/braid-router/braid/session"
	"github.com/braid-router/braid/sessions/peer"
)

// peerSubflows is the peer's MPTCP subflows limit: the kernel's maximum.
// A box opens a subflow from each of its uplinks but the first subflow's
// (at most 7 more, within a box's 8 endpoints), and the peer, which
// cannot know how many uplinks its boxes have, accepts as many joins as
// the kernel allows.
const peerSubflows = mptcp.MaxLimit

// Peer compiles the aggregation peer's spec (kind: Peer):
//
//   - session[peer/shadowsocks], which listens on listen with Multipath
//     TCP and serves the boxes' shadowsocks streams, and with UDP serves
//     the shadowsocks UDP relay;
//   - net.mptcp.enabled=1 and net.mptcp.pm_type=0 (the in-kernel path
//     manager, whose limits these are), and the limits subflows 8 (the
//     joins a connection accepts: a subflow per box uplink) and
//     add_addr_accepted 0 (the peer announces no address and opens no
//     subflow itself);
//   - with management.allow, the peer's own firewall in braid's table
//     (peerFirewall): management.allow, the listener and what a host
//     needs come in, the rest is dropped; without it, no table at all;
//   - management.probes as the targets that must keep answering after a
//     change (the daemon's trials), as on a router.
func Peer(spec *api.PeerSpec, _ facts.Set) (reconcile.Desired, error) {
	if spec == nil {
		return reconcile.Desired{}, nil
	}
	d := reconcile.Desired{Resources: []plan.Resource{
		nl.Sysctl{Name: "net.mptcp.enabled", Value: "1"},
		nl.Sysctl{Name: "net.mptcp.pm_type", Value: "0"},
		mptcp.Limits{Subflows: peerSubflows, AddAddrAccepted: 0},
	}}
	if spec.Listen == "" {
		d.Notes = append(d.Notes, plan.Note{Section: "listen", Message: "not set: the peer does not listen"})
	} else {
		d.Sessions = []session.Spec{{Kind: peer.Kind, Name: peer.Name, Config: peer.Config{
			Listen:     spec.Listen,
			Cipher:     cmp.Or(spec.Cipher, api.DefaultCipher),
			Key:        spec.Key,
			AllowLocal: spec.AllowLocal,
		}}}
	}
	fw, err := peerFirewall(spec)
	if err != nil {
		return reconcile.Desired{}, err
	}
	d.Resources = append(d.Resources, fw...)
	d.Targets = managementTargets(spec.Management)
	return d, nil
}

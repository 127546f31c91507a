package mptcp

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/braid-router/braid/reconcile/plan"
)

// Kernel limits of the in-kernel path manager (MPTCP_PM_ADDR_MAX): at most
// this many endpoints per network namespace, and at most this much for
// each of the limits.
const (
	MaxEndpoints = 8
	MaxLimit     = 8
)

// Flags are an endpoint's flags, the kernel's MPTCP_PM_ADDR_FLAG_* bits.
type Flags uint32

// Endpoint flags, as in linux/mptcp.h.
const (
	// FlagSignal announces the address to the peer (ADD_ADDR): the
	// aggregation peer's role.
	FlagSignal Flags = 1 << 0
	// FlagSubflow opens a subflow from the address: the box's role.
	FlagSubflow Flags = 1 << 1
	// FlagBackup marks the address's subflows as backup: used only when
	// no other subflow can send.
	FlagBackup Flags = 1 << 2
	// FlagFullmesh opens a subflow from the address to every address the
	// peer announced, not only to the one the connection started with.
	FlagFullmesh Flags = 1 << 3
	// FlagImplicit marks an endpoint the kernel made itself for a local
	// address a subflow uses; a user's endpoint may replace it.
	FlagImplicit Flags = 1 << 4
)

// flagNames are the flags in the order and words of `ip mptcp endpoint`.
var flagNames = []struct {
	f    Flags
	name string
}{
	{FlagSignal, "signal"},
	{FlagSubflow, "subflow"},
	{FlagBackup, "backup"},
	{FlagFullmesh, "fullmesh"},
	{FlagImplicit, "implicit"},
}

// String renders the flags as ip(8) does ("subflow backup"); bits this
// version does not know are shown as one hexadecimal number.
func (f Flags) String() string {
	var words []string
	for _, n := range flagNames {
		if f&n.f != 0 {
			words = append(words, n.name)
			f &^= n.f
		}
	}
	if f != 0 {
		words = append(words, "0x"+strconv.FormatUint(uint64(f), 16))
	}
	return strings.Join(words, " ")
}

// Endpoint is an MPTCP endpoint braid keeps: a local address the in-kernel
// path manager uses for subflows, bound to an interface. Its identity is
// its address; the kernel's endpoint id is not part of it (braid keeps the
// ids of its endpoints in the ownership record).
type Endpoint struct {
	Addr netip.Addr
	// Dev is the interface the endpoint is bound to; "" for none.
	Dev string
	// Flags are the endpoint's flags.
	Flags Flags
}

// Address implements plan.Resource: "mptcp.endpoint[10.101.0.2]".
func (e Endpoint) Address() string { return "mptcp.endpoint[" + e.Addr.String() + "]" }

// Fields implements plan.Resource.
func (e Endpoint) Fields() []plan.Field {
	return []plan.Field{{Name: "dev", Value: e.Dev}, {Name: "flags", Value: e.Flags.String()}}
}

// foreignEndpoint is an endpoint braid did not create, observed at the
// address of a desired one. Its fields name its id, so that a conflict
// tells the administrator which endpoint is in the way.
type foreignEndpoint struct {
	Endpoint
	ID   uint8
	Port uint16
}

// Fields implements plan.Resource.
func (e foreignEndpoint) Fields() []plan.Field {
	f := []plan.Field{{Name: "id", Value: strconv.Itoa(int(e.ID))}}
	if e.Port != 0 {
		f = append(f, plan.Field{Name: "port", Value: strconv.Itoa(int(e.Port))})
	}
	return append(f, e.Endpoint.Fields()...)
}

// Limits are the in-kernel path manager's per-connection limits of the
// namespace (`ip mptcp limits`).
type Limits struct {
	// Subflows is the most additional subflows a connection may have.
	Subflows uint32
	// AddAddrAccepted is the most ADD_ADDR announcements from the peer a
	// connection accepts (and opens subflows to).
	AddAddrAccepted uint32
}

// Address implements plan.Resource.
func (l Limits) Address() string { return "mptcp.limits" }

// Fields implements plan.Resource.
func (l Limits) Fields() []plan.Field {
	return []plan.Field{
		{Name: "subflows", Value: strconv.FormatUint(uint64(l.Subflows), 10)},
		{Name: "add_addr_accepted", Value: strconv.FormatUint(uint64(l.AddAddrAccepted), 10)},
	}
}

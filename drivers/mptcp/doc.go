// Package mptcp converges the in-kernel MPTCP path manager of a network
// namespace: its endpoints (`ip mptcp endpoint`) and its limits (`ip mptcp
// limits`), over the generic netlink family mptcp_pm. Its Driver
// implements reconcile.Driver. The net.mptcp.* sysctls a spec implies are
// the netlink driver's Sysctl resources.
//
// # Resources
//
// Endpoint, addressed "mptcp.endpoint[ADDR]", is a local address the path
// manager opens subflows from, bound to an interface, with its flags
// (subflow, backup, fullmesh; signal for the aggregation peer). Its
// identity is the address: the kernel's endpoint id is not part of it.
// Limits, addressed "mptcp.limits", are the namespace's subflows and
// add_addr_accepted.
//
// # Ownership
//
// Endpoints carry no owner mark, so braid writes each endpoint it adds to
// the write-ahead ownership record (kind "mptcp.endpoint", keyed by the
// address, holding the id) before the kernel write. braid picks the id
// itself (the lowest one free), so that the record names the endpoint
// exactly even after a crash right after the write. ApplyBatch writes the
// entries of its whole batch (ids chosen in turn) in one write before its
// first kernel write, and the removals that follow its deletes in one
// write after its last. An endpoint is
// braid's when the record's id still holds the record's address; any
// other endpoint is foreign and left alone, and one at an address braid
// wants is a conflict. Deletes go by id (the kernel's only way) after
// checking that the id still holds braid's address. An implicit endpoint
// (one the kernel made itself for an address a subflow used) is not a
// conflict: braid's endpoint replaces it, as the kernel allows, and
// records the id the kernel keeps for it.
//
// The limits always exist. Before braid first changes them it records
// their previous value (kind "mptcp.limits", key "previous"); a delete
// (destroy, or no MPTCP uplink left in the spec) puts that value back.
//
// # Changes
//
// An endpoint whose backup or fullmesh flag changes is changed in place
// (MPTCP_PM_CMD_SET_FLAGS, as `ip mptcp endpoint change`), keeping its
// subflows; one whose interface or other flags change is deleted and
// added again with the same id. An address that changes is a new endpoint
// and the old one's delete: the plan shows both.
//
// # Cost
//
// Observe makes one endpoint dump and one limits request, and none at all
// when nothing is desired or recorded (so a spec without MPTCP works on a
// kernel without it). Apply makes one request per write, plus a look-up
// of the id before a delete or a change, and none when there is nothing
// to change: a converged state costs no write. The kernel sends no events
// when endpoints change; drift is found by observing again.
package mptcp

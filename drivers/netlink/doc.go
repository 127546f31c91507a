// Package netlink converges the kernel's links, addresses, routes, policy
// rules and sysctls for the interfaces a spec names, over rtnetlink and
// /proc/sys. Its Driver implements reconcile.Driver.
//
// # Ownership
//
// Routes and rules carry braid's protocol number (Protocol, 98): a route or
// rule with it is braid's, whatever table it is in, and a delete names the
// protocol so that it can never take a foreign object along. What the
// kernel cannot mark goes to the write-ahead ownership record before the
// write: the addresses braid adds (kind "address", key "LINK PREFIX"), the
// previous value of each sysctl it changes (kind "sysctl") and the previous
// admin state, MTU and MAC address of each link it changes (kind "link"),
// so that a delete puts them back as they were found. ApplyBatch writes the
// entries of its whole batch at once, before its first kernel write, and
// the removals that follow its deletes once after its last (see
// writeAhead). Observe never writes the record (a plan is read-only);
// entries it finds stale are forgotten by the next Apply or by
// PruneRecord.
//
// A foreign address, route or rule with the identity of a desired one is
// observed as Foreign, which the diff turns into a conflict; an Apply that
// meets one anyway fails with an error wrapping ErrConflict and leaves it
// alone.
//
// Routes are unicast or local (braid's proxy table delivers marked packets
// to the box: "local default dev lo table 7190"). The kernel's own local,
// broadcast, anycast and multicast routes (its local table) are never
// observed.
//
// # Addresses
//
// Addresses are added with IFA_F_NOPREFIXROUTE: their prefix routes are
// braid's own routes, so a deleted one is drift braid sees and repairs.
// IPv6 addresses are also added with IFA_F_NODAD. An address in duplicate
// address detection is tentative, and the kernel refuses a tentative
// address as a route's preferred source, so without NODAD the routes that
// name it could not be installed in the same pass (nor ever, on a link
// without carrier); braid's addresses come from the spec, like IPv4
// addresses, which have no DAD either.
//
// # Idempotency
//
// EEXIST on the create of an object braid owns, and ENOENT, ESRCH or
// EADDRNOTAVAIL on a delete, are "already so". EEXIST is told apart by
// looking at what holds the identity: for an address, whether braid had
// recorded it before this create; for a route or rule, a dump of its family
// (only on this rare path) for braid's own object with that identity. A
// braid route that differs is replaced; anything else is a conflict.
//
// # Cost
//
// Observe makes one dump per kind and family: links, addresses, routes of
// every table, rules; the IPv6 routes are dumped while the rest is.
// Prefetch starts those dumps in the background so that they overlap with
// the caller's parsing of a spec, and the next Observe (only that one) uses
// them. Apply makes one request per write and none when there is nothing
// to change, so a converged state costs no write. ApplyBatch pipelines
// route and rule writes, many requests per sendmsg, and applies a long run
// in two lanes, IPv4 and IPv6, side by side; it keeps Apply's semantics
// and the engine's "the first n took effect" (see ApplyBatch). Interface
// indexes are cached from Observe's link dump. When the driver opens its
// own sockets, route and rule writes and route dumps go over minimal
// request/ack sockets (conn) with reused buffers: ten thousand routes must
// not cost more than `ip -batch` of the same routes.
package netlink

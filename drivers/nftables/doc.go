// Package nftables converges braid's packet rules: NAT, the router's
// firewall, port forwards, and the marks and sets for what routes cannot
// express. Its Driver implements reconcile.Driver and
// reconcile.BatchApplier.
//
// # Ownership
//
// Everything braid does with nftables lives in one table, `table inet
// braid` (TableName), and nothing else: the table is the mark. Every
// chain, set and rule in it is braid's, and nothing outside it is ever
// read into a plan, changed or deleted. Another program's tables, chains
// and rules are left as they are, whatever they contain; removing all of
// braid's state is deleting its table. ReadForeign reads them, only for
// the analysis that warns when they drop what braid lets through
// (package foreignfw): never into a plan.
//
// # Resources
//
//	nft.table[inet braid]                     state (active, or dormant)
//	nft.chain[inet braid input]               type, hook, priority, policy
//	nft.set[inet braid allow_v4]              type, flags, elements (a count)
//	nft.set[inet braid egress_isp1_v4]        type, flags timeout, elements session-owned
//	nft.rule[inet braid input:lan]            rule (nft's text, without the comment)
//
// A rule's ID is its identity within its chain across passes, stored in
// the rule's user data as the comment nft shows (`comment "lan"`); the plan
// names the rule that changed by it. Rules are compared by their text,
// rendered the same way from the desired expressions and from the
// kernel's (see render): handles and counters' values are not part of it.
// Rules are read with braid's own dump rather than google/nftables' (which
// drops expressions it does not know, tproxy among them): an expression
// braid has no type for is written out in full in the rule's text, and a
// rule holding one is never written back.
// A rule that is where the desired order does not want it is observed with
// "position: out of order" and moved. A rule in braid's table without an
// ID (added by hand) is observed as "handle-N" and deleted.
//
// An interval set's elements are address ranges; an observed set that
// differs from the desired one says in its elements field what applying
// adds (+) and removes (-), and applying changes only those elements,
// never the whole set (kube-proxy's approach for large sets).
//
// A timeout set (Ruleset.AddTimeoutSet: the per-domain egress sets) is
// the one kind of object whose contents are not the driver's: its
// elements belong to a session (the DNS forwarder), which writes them one
// answer at a time with Elements, each with its own timeout, after which
// the kernel drops it. The driver converges the set's definition
// (creates it, replaces it when its type or flags differ, deletes it) and
// never reads, diffs, removes or reports its elements: a pass leaves them
// as they are.
//
// # Transactions
//
// The engine hands the driver every nftables change of a pass at once
// (ApplyBatch); they become one netlink transaction, which the kernel
// applies entirely or not at all. It is built against the table as read
// right before (handles, set elements), so a change already so (a delete
// of a rule that is gone) writes nothing. A refused transaction changes
// nothing and returns a *RefusedError naming the changes whose messages
// the kernel refused, with its errors. Deleting the table (braid destroy)
// is one message.
//
// # Cost
//
// Observe reads the table by name, the chains of the inet family (keeping
// braid's: the kernel has no per-table chain dump), and the table's sets,
// their elements and its rules, chain by chain. The elements, the one
// large read, come over the driver's own socket in messages of 32 KiB,
// which the kernel builds about four times faster than page-sized ones.
// A timeout set's elements are never read. Elements.Add, the session's
// write, reads nothing either: it is one transaction of its elements on
// a socket kept open, built without allocating (about 14 µs for one
// element, 70,000 answers a second: BenchmarkElementsAdd).
// Prefetch starts that read early (the CLI, once it holds the lock), and
// the engine starts it beside the netlink driver's dumps. A converged
// table produces no plan change and so no write.
package nftables

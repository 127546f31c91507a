package netlink

import "strings"

// createdPrefix begins the alias of every link braid creates.
const createdPrefix = "braid:"

// CreatedAlias is the alias (IFLA_IFALIAS, `ip link show` prints it after
// "alias") of a link a braid session creates for what, "tunnel/sixpe":
// braid's mark on a link, as protocol 98 is on a route. Such links (the
// 6PE tunnel's TUN link) are not persistent: the kernel removes them when
// the process that holds them ends, so there is nothing to record or put
// back; a link with the mark is braid's, whatever its name.
func CreatedAlias(what string) string { return createdPrefix + what }

// CreatedBy reports whether alias, a link's alias, is braid's mark, and
// what the link was created for.
func CreatedBy(alias string) (what string, ok bool) {
	what, ok = strings.CutPrefix(alias, createdPrefix)
	return what, ok && what != ""
}

package policy

import (
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// maxChain bounds the CNAME chain followed in one answer (a loop or an
// absurdly long chain ends the walk).
const maxChain = 16

// normalize returns suffixes as lower-case fully qualified names, or an
// error naming the first invalid one.
func normalize(suffixes []string) ([]string, error) {
	out := make([]string, 0, len(suffixes))
	for _, s := range suffixes {
		if _, ok := dns.IsDomainName(s); !ok || s == "" {
			return nil, fmt.Errorf("dns policy: %q is not a domain name", s)
		}
		out = append(out, dns.CanonicalName(s))
	}
	return out, nil
}

// under reports whether name is equal to or under suffix (both lower-case
// and fully qualified), on label boundaries.
func under(name, suffix string) bool {
	if suffix == "." {
		return true
	}
	return dns.IsSubDomain(suffix, name)
}

// matchIndex returns the index of the longest suffix name is under, or -1.
func matchIndex(name string, suffixes []string) int {
	best, bestLabels := -1, -1
	for i, s := range suffixes {
		if under(name, s) {
			if n := dns.CountLabel(s); n > bestLabels {
				best, bestLabels = i, n
			}
		}
	}
	return best
}

// chain returns the question's name followed by the names the answer's
// CNAME records lead to from it, all lower-case, without repeats.
func chain(m *dns.Msg) []string {
	if m == nil || len(m.Question) == 0 {
		return nil
	}
	cur := dns.CanonicalName(m.Question[0].Name)
	names := []string{cur}
	for len(names) < maxChain {
		next := ""
		for _, rr := range m.Answer {
			c, ok := rr.(*dns.CNAME)
			if ok && c.Hdr.Class == dns.ClassINET && strings.EqualFold(c.Hdr.Name, cur) {
				next = dns.CanonicalName(c.Target)
				break
			}
		}
		if next == "" || contains(names, next) {
			break
		}
		names = append(names, next)
		cur = next
	}
	return names
}

func contains(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

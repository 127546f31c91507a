package policy

import (
	"fmt"

	"github.com/miekg/dns"
)

// AAAAFilter is the spec's dns.aaaa and dns.filterAAAA: which answers lose
// their IPv6 addresses. The zero AAAAFilter keeps everything.
type AAAAFilter struct {
	all      bool
	suffixes []string
}

// NewAAAAFilter returns the filter for dns.aaaa (mode: "", "keep" or
// "filter") and dns.filterAAAA (suffixes, used with keep). "filter"
// filters every name; "keep" with suffixes filters the names equal to or
// under one of them; "keep" without suffixes filters nothing.
func NewAAAAFilter(mode string, suffixes []string) (AAAAFilter, error) {
	switch mode {
	case "filter":
		return AAAAFilter{all: true}, nil
	case "", "keep":
		s, err := normalize(suffixes)
		if err != nil {
			return AAAAFilter{}, fmt.Errorf("filterAAAA: %w", err)
		}
		return AAAAFilter{suffixes: s}, nil
	default:
		return AAAAFilter{}, fmt.Errorf("dns policy: aaaa %q is neither keep nor filter", mode)
	}
}

// Matches reports whether the filter applies to m: m's question name or a
// name its answer's CNAME chain reaches is filtered.
func (f AAAAFilter) Matches(m *dns.Msg) bool {
	if m == nil || len(m.Question) == 0 {
		return false
	}
	if f.all {
		return true
	}
	if len(f.suffixes) == 0 {
		return false
	}
	for _, name := range chain(m) {
		if matchIndex(name, f.suffixes) >= 0 {
			return true
		}
	}
	return false
}

// Apply filters the answer m in place when the filter applies to it (see
// [AAAAFilter.Matches]) and reports whether it changed anything. It
// removes AAAA records from the answer and additional sections, the
// ipv6hint of HTTPS and SVCB records there, the RRSIGs covering what it
// removed or changed, and the NS records of the authority section when
// the answer is left without data; see the package documentation for why.
// Apply replaces m's section slices and the records it changes, never
// modifying a record in place, so records m shares with a cached message
// stay intact.
func (f AAAAFilter) Apply(m *dns.Msg) bool {
	if !f.Matches(m) {
		return false
	}
	touched := map[uint16]bool{}
	answer, a := filterSection(m.Answer, touched)
	extra, b := filterSection(m.Extra, touched)
	if !a && !b {
		return false
	}
	m.Answer = dropSigs(answer, touched)
	m.Extra = dropSigs(extra, touched)
	if m.Rcode == dns.RcodeSuccess && !hasData(m) {
		m.Ns = keepSOA(m.Ns)
	}
	return true
}

// filterSection returns rrs without AAAA records and with HTTPS and SVCB
// records copied without their ipv6hint, recording the types it touched.
func filterSection(rrs []dns.RR, touched map[uint16]bool) ([]dns.RR, bool) {
	changed := false
	out := make([]dns.RR, 0, len(rrs))
	for _, rr := range rrs {
		switch r := rr.(type) {
		case *dns.AAAA:
			touched[dns.TypeAAAA] = true
			changed = true
			continue
		case *dns.HTTPS:
			if hasV6Hint(r.Value) {
				c := dns.Copy(r).(*dns.HTTPS)
				c.Value = withoutV6Hint(c.Value)
				touched[dns.TypeHTTPS] = true
				changed = true
				rr = c
			}
		case *dns.SVCB:
			if hasV6Hint(r.Value) {
				c := dns.Copy(r).(*dns.SVCB)
				c.Value = withoutV6Hint(c.Value)
				touched[dns.TypeSVCB] = true
				changed = true
				rr = c
			}
		}
		out = append(out, rr)
	}
	if !changed {
		return rrs, false
	}
	return out, true
}

func hasV6Hint(kvs []dns.SVCBKeyValue) bool {
	for _, kv := range kvs {
		if kv.Key() == dns.SVCB_IPV6HINT {
			return true
		}
	}
	return false
}

func withoutV6Hint(kvs []dns.SVCBKeyValue) []dns.SVCBKeyValue {
	out := make([]dns.SVCBKeyValue, 0, len(kvs))
	for _, kv := range kvs {
		if kv.Key() != dns.SVCB_IPV6HINT {
			out = append(out, kv)
		}
	}
	return out
}

// dropSigs removes the RRSIGs covering a touched type.
func dropSigs(rrs []dns.RR, touched map[uint16]bool) []dns.RR {
	out := rrs[:0:0]
	for _, rr := range rrs {
		if s, ok := rr.(*dns.RRSIG); ok && touched[s.TypeCovered] {
			continue
		}
		out = append(out, rr)
	}
	return out
}

// hasData reports whether m's answer holds a record of the question's
// type (or any record, for ANY).
func hasData(m *dns.Msg) bool {
	qt := m.Question[0].Qtype
	for _, rr := range m.Answer {
		t := rr.Header().Rrtype
		if t == qt || (qt == dns.TypeANY && t != dns.TypeRRSIG) {
			return true
		}
	}
	return false
}

// keepSOA returns the authority section without its NS records (and their
// signatures), so a NODATA answer does not look like a referral.
func keepSOA(rrs []dns.RR) []dns.RR {
	out := rrs[:0:0]
	for _, rr := range rrs {
		switch r := rr.(type) {
		case *dns.NS:
			continue
		case *dns.RRSIG:
			if r.TypeCovered == dns.TypeNS {
				continue
			}
		}
		out = append(out, rr)
	}
	return out
}

package api

import (
	"reflect"
	"strings"
)

// The field table.
//
// Every struct in the spec describes its fields with tags, and one table
// derived from them drives decoding (field names, unknown fields and their
// did-you-mean), validation (required fields, enums, formats), redaction and
// the effective output:
//
//	json:"name,omitempty"  the field's name in YAML; "-" hides the field
//	required:"true"        the field must be present and not empty
//	enum:"a,b,c"           the allowed values of a string
//	format:"cidr"          a syntax a string (or each string of a list) must
//	                       have: cidr, ifaddr, ip, hostport, ifname, name,
//	                       duration, resolver, domain, mac or addrport;
//	                       see formats
//	secret:"true"          the value is redacted in every output

// field is one entry of a struct's field table.
type field struct {
	name      string
	index     int
	typ       reflect.Type
	omitempty bool
	required  bool
	secret    bool
	enum      []string
	format    string
}

// fieldTable lists a struct's fields in declaration order.
type fieldTable struct {
	fields []field
	byName map[string]int
}

// names returns the YAML names of the fields, in order.
func (t *fieldTable) names() []string {
	names := make([]string, len(t.fields))
	for i, f := range t.fields {
		names[i] = f.name
	}
	return names
}

// lookup returns the field called name.
func (t *fieldTable) lookup(name string) (*field, bool) {
	i, ok := t.byName[name]
	if !ok {
		return nil, false
	}
	return &t.fields[i], true
}

// tables memoizes field tables for one run; it is never shared between
// runs, so the package holds no mutable state.
type tables map[reflect.Type]*fieldTable

// of returns the field table of struct type t.
func (ts tables) of(t reflect.Type) *fieldTable {
	if ft, ok := ts[t]; ok {
		return ft
	}
	ft := &fieldTable{byName: make(map[string]int)}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" || name == "" {
			continue
		}
		f := field{
			name:      name,
			index:     i,
			typ:       sf.Type,
			omitempty: hasOpt(opts, "omitempty"),
			required:  sf.Tag.Get("required") == "true",
			secret:    sf.Tag.Get("secret") == "true",
			format:    sf.Tag.Get("format"),
		}
		if e := sf.Tag.Get("enum"); e != "" {
			f.enum = strings.Split(e, ",")
		}
		ft.byName[name] = len(ft.fields)
		ft.fields = append(ft.fields, f)
	}
	ts[t] = ft
	return ft
}

func hasOpt(opts, opt string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// suggest returns the candidate closest to s, or "" when none is close
// enough to be what the user meant. Case is ignored; a unique candidate that
// s is a prefix of also counts (chacha20 -> chacha20-ietf-poly1305).
func suggest(s string, candidates []string) string {
	ls := strings.ToLower(s)
	best, bestDist := "", -1
	for _, c := range candidates {
		d := editDistance(ls, strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	if best != "" && bestDist <= max(1, len([]rune(s))/3) && bestDist < len([]rune(best)) {
		return best
	}
	prefixed := ""
	for _, c := range candidates {
		if len(ls) >= 3 && strings.HasPrefix(strings.ToLower(c), ls) {
			if prefixed != "" {
				return ""
			}
			prefixed = c
		}
	}
	return prefixed
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent runes
// each cost one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// Three rows: two back (for transpositions), one back, current.
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// oneOf renders a list of choices for a message: "a", "a or b", "a, b or c".
func oneOf(choices []string) string {
	switch len(choices) {
	case 0:
		return ""
	case 1:
		return choices[0]
	}
	return strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
}

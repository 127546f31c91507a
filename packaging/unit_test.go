package packaging

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Unit is a parsed systemd unit file: section name to key to the values
// of every assignment of that key, in order (an empty assignment resets
// the list, as systemd reads it).
type Unit map[string]map[string][]string

// ParseUnit reads a unit file. It understands comments, sections,
// key=value lines and backslash continuations; it does not expand
// specifiers or drop-ins.
func ParseUnit(r io.Reader) (Unit, error) {
	u := Unit{}
	var section string
	sc := bufio.NewScanner(r)
	var cont strings.Builder
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if cont.Len() > 0 || strings.HasSuffix(text, "\\") {
			cont.WriteString(strings.TrimSuffix(text, "\\"))
			if strings.HasSuffix(text, "\\") {
				cont.WriteByte(' ')
				continue
			}
			text = cont.String()
			cont.Reset()
		}
		switch {
		case text == "" || text[0] == '#' || text[0] == ';':
		case text[0] == '[':
			if !strings.HasSuffix(text, "]") {
				return nil, fmt.Errorf("line %d: bad section header %q", line, text)
			}
			section = text[1 : len(text)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			key, value, ok := strings.Cut(text, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("line %d: not a key=value in a section: %q", line, text)
			}
			key, value = strings.TrimSpace(key), strings.TrimSpace(value)
			if value == "" {
				u[section][key] = nil
				continue
			}
			u[section][key] = append(u[section][key], value)
		}
	}
	return u, sc.Err()
}

// Get returns the last value of key in section, as systemd applies
// single-valued settings, or "" when unset.
func (u Unit) Get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// Words returns every whitespace-separated word of every assignment of a
// list setting (CapabilityBoundingSet=, RestrictAddressFamilies=).
func (u Unit) Words(section, key string) []string {
	var words []string
	for _, v := range u[section][key] {
		words = append(words, strings.Fields(v)...)
	}
	return words
}

// Package linediff tells two texts apart line by line, for tests that
// compare a state before and after: which lines went, which came.
package linediff

import "strings"

// Diff lists the lines of a that are not in b, as "- LINE", then those of
// b that are not in a, as "+ LINE", each in its text's order and ending in
// a newline. Equal texts give "".
func Diff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	ina, inb := set(la), set(lb)
	var out strings.Builder
	for _, l := range la {
		if !inb[l] {
			out.WriteString("- " + l + "\n")
		}
	}
	for _, l := range lb {
		if !ina[l] {
			out.WriteString("+ " + l + "\n")
		}
	}
	return out.String()
}

func set(lines []string) map[string]bool {
	m := make(map[string]bool, len(lines))
	for _, l := range lines {
		m[l] = true
	}
	return m
}

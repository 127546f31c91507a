package api

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem found in a spec file.
//
// Line and Col are 1-based; both are zero when the problem concerns the whole
// file (or a document built in Go, which has no positions). Path names the
// field in the spec, as in spec.uplinks[1].ipv4.dhcp.vendorClass; it is empty
// for whole-file problems and for problems with the top-level mapping.
type Error struct {
	File      string
	Line, Col int
	Path, Msg string
}

// Error formats e as FILE:LINE:COL: path: message, leaving out the parts e
// does not have: a whole-file problem reads FILE: message.
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	if e.Path != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Path)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one run over a spec file, sorted by
// position: whole-file problems first, then by line, column and path. When
// there are more than MaxErrors, the list holds the first MaxErrors and a
// last Error without a position that says how many were left out.
type Errors struct {
	List []Error
}

// Error prints one line per problem.
func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, x := range e.List {
		lines[i] = x.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems as a list of errors, so errors.As can find an
// Error.
func (e *Errors) Unwrap() []error {
	errs := make([]error, len(e.List))
	for i, x := range e.List {
		errs[i] = x
	}
	return errs
}

// sort orders the list by position, keeping the order of discovery among
// problems at the same position and path.
func (e *Errors) sort() {
	slices.SortStableFunc(e.List, func(a, b Error) int {
		return cmp.Or(
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Col, b.Col),
			cmp.Compare(a.Path, b.Path),
		)
	})
}

// fileError is a whole-file problem: one Error, no position.
func fileError(file, format string, args ...any) *Errors {
	return &Errors{List: []Error{{File: file, Msg: fmt.Sprintf(format, args...)}}}
}

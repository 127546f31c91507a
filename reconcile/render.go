package reconcile

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/braid-router/braid/reconcile/plan"
)

// PlanFormatVersion is the version of the JSON plan document. It changes
// only when a field is removed or changes meaning.
const PlanFormatVersion = "1"

// PlanDocument is the stable JSON form of a plan (`braid plan --json`).
type PlanDocument struct {
	FormatVersion string          `json:"format_version"`
	Namespace     string          `json:"namespace"`
	Changes       []ChangeDoc     `json:"changes"`
	Conflicts     []plan.Conflict `json:"conflicts"`
	Notes         []plan.Note     `json:"notes"`
	// Warnings are what defeats the spec beside braid's objects (another
	// firewall dropping what braid lets through): not changes.
	Warnings []plan.Warning `json:"warnings"`
	// RunByDaemon lists, when no daemon runs, the sessions and
	// process-bound objects that only `braid run` runs (not changes).
	RunByDaemon []ResourceDoc `json:"run_by_daemon"`
	Summary     Summary       `json:"summary"`
}

// ResourceDoc is a resource in a PlanDocument: its address and fields,
// secret values reading "(sensitive)".
type ResourceDoc struct {
	Address string            `json:"address"`
	Fields  map[string]string `json:"fields"`
}

// ChangeDoc is one change in a PlanDocument. Before is absent for a create,
// After for a delete; secret values read "(sensitive)".
type ChangeDoc struct {
	Action  plan.Action       `json:"action"`
	Address string            `json:"address"`
	Before  map[string]string `json:"before,omitempty"`
	After   map[string]string `json:"after,omitempty"`
}

// Summary counts a plan's changes.
type Summary struct {
	Add    int `json:"add"`
	Change int `json:"change"`
	Remove int `json:"remove"`
}

// Document renders p as its JSON document.
func (p *Plan) Document(namespace string) PlanDocument {
	doc := PlanDocument{
		FormatVersion: PlanFormatVersion,
		Namespace:     namespace,
		Changes:       []ChangeDoc{},
		Conflicts:     p.Conflicts,
		Notes:         p.Notes,
		Warnings:      p.Warnings,
		RunByDaemon:   []ResourceDoc{},
	}
	if doc.Warnings == nil {
		doc.Warnings = []plan.Warning{}
	}
	if doc.Conflicts == nil {
		doc.Conflicts = []plan.Conflict{}
	}
	if doc.Notes == nil {
		doc.Notes = []plan.Note{}
	}
	for _, r := range p.ByDaemon {
		doc.RunByDaemon = append(doc.RunByDaemon, ResourceDoc{Address: r.Address(), Fields: fieldMap(r)})
	}
	for _, c := range slices.Concat(p.Changes, p.Sessions) {
		doc.Changes = append(doc.Changes, ChangeDoc{
			Action:  c.Action,
			Address: c.Address(),
			Before:  fieldMap(c.Before),
			After:   fieldMap(c.After),
		})
	}
	doc.Summary.Add, doc.Summary.Change, doc.Summary.Remove = p.Counts()
	return doc
}

func fieldMap(r plan.Resource) map[string]string {
	if r == nil {
		return nil
	}
	m := map[string]string{}
	for _, f := range r.Fields() {
		m[f.Name] = f.Display()
	}
	return m
}

// ANSI colours for a terminal.
const (
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	red    = "\x1b[31m"
	bold   = "\x1b[1m"
	reset  = "\x1b[0m"
)

// WriteText writes the plan as text: one line per change prefixed with
// +, ~ or -, conflicts, notes and a summary line. Colour is for terminals.
func (p *Plan) WriteText(w io.Writer, color bool) error {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return code + s + reset
	}
	var b strings.Builder
	for _, c := range slices.Concat(p.Changes, p.Sessions) {
		code := map[plan.Action]string{plan.Create: green, plan.Update: yellow, plan.Delete: red}[c.Action]
		fmt.Fprintf(&b, "  %s %s", paint(code, c.Action.Symbol()), c.Address())
		switch c.Action {
		case plan.Create:
			b.WriteString("  " + plan.Describe(c.After))
		case plan.Delete:
			b.WriteString("  " + plan.Describe(c.Before))
		case plan.Update:
			b.WriteString("  " + describeUpdate(c.Before, c.After))
		}
		b.WriteByte('\n')
	}
	if len(p.Conflicts) > 0 {
		b.WriteString("\nConflicts with objects braid does not own (left alone):\n")
		for _, c := range p.Conflicts {
			fmt.Fprintf(&b, "  %s %s\n", paint(red, "!"), c)
		}
	}
	if len(p.ByDaemon) > 0 {
		b.WriteString("\nRun by `braid run`, not by this command (not changes):\n")
		for _, r := range p.ByDaemon {
			fmt.Fprintf(&b, "  %s %s  %s\n", paint(bold, "*"), r.Address(), plan.Describe(r))
		}
	}
	for _, waiting := range []bool{true, false} {
		header := "\nNotes (not changes):\n"
		if waiting {
			header = "\nWaiting (not changes):\n"
		}
		for _, n := range p.Notes {
			if n.Waiting != waiting {
				continue
			}
			b.WriteString(header)
			header = ""
			fmt.Fprintf(&b, "  * %s\n", n)
		}
	}
	if len(p.Warnings) > 0 {
		b.WriteString("\nDefeated by what else is on this box (not changes; braid leaves it alone):\n")
		for _, w := range p.Warnings {
			for i, l := range w.Lines() {
				if i == 0 {
					fmt.Fprintf(&b, "  %s %s\n", paint(yellow, "!"), l)
				} else {
					fmt.Fprintf(&b, "  %s\n", l)
				}
			}
		}
	}
	add, change, remove := p.Counts()
	if p.Empty() {
		if len(p.Conflicts) > 0 || len(p.Notes) > 0 || len(p.ByDaemon) > 0 || len(p.Warnings) > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(paint(bold, "No changes.") + " The live state matches the spec" + p.WarningSuffix() + ".\n")
	} else {
		fmt.Fprintf(&b, "\n%s\n", paint(bold, fmt.Sprintf("Plan: %d to add, %d to change, %d to remove.", add, change, remove)))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WarningSuffix qualifies a claim that the live state matches the spec
// when something else defeats it: "" without warnings, else ", but
// another firewall on this box drops N of the flows it lets through (see
// above)".
func (p *Plan) WarningSuffix() string {
	drops := plan.CountKind(p.Warnings, plan.WarnForeignDrop)
	other := len(p.Warnings) - drops
	switch {
	case drops > 0:
		return fmt.Sprintf(", but another firewall on this box drops %d of the flows it lets through (see above)", drops)
	case other > 0:
		return fmt.Sprintf(", but braid could not check everything else on this box that may drop what it lets through (%d warning(s) above)", other)
	}
	return ""
}

// describeUpdate shows the fields that differ as "name: before -> after".
func describeUpdate(before, after plan.Resource) string {
	old := map[string]plan.Field{}
	for _, f := range before.Fields() {
		old[f.Name] = f
	}
	var parts []string
	seen := map[string]bool{}
	for _, f := range after.Fields() {
		seen[f.Name] = true
		o, ok := old[f.Name]
		switch {
		case !ok:
			parts = append(parts, fmt.Sprintf("%s: (none) -> %s", f.Name, f.Display()))
		case o.Value != f.Value && (o.Secret || f.Secret):
			parts = append(parts, fmt.Sprintf("%s: %s changed", f.Name, plan.Redacted))
		case o.Value != f.Value:
			parts = append(parts, fmt.Sprintf("%s: %s -> %s", f.Name, o.Display(), f.Display()))
		}
	}
	for _, f := range before.Fields() {
		if !seen[f.Name] {
			parts = append(parts, fmt.Sprintf("%s: %s -> (none)", f.Name, f.Display()))
		}
	}
	return strings.Join(parts, ", ")
}

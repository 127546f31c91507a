package plan

import "strings"

// Kinds of warning.
const (
	// WarnForeignDrop: another firewall on the box drops (or may drop)
	// a flow braid's table lets through.
	WarnForeignDrop = "foreign-drop"
	// WarnUnanalysed: a firewall braid cannot analyse is there (legacy
	// iptables, a hook braid does not model), or the analysis failed.
	WarnUnanalysed = "unanalysed"
)

// Warning is something a plan must say that is neither a change nor a
// conflict: braid's objects are as desired, but something else on the
// box defeats what they are for (another firewall drops the traffic
// braid lets through). braid leaves it alone; a person decides.
type Warning struct {
	// Kind is WarnForeignDrop or WarnUnanalysed.
	Kind string `json:"kind"`
	// Key identifies the warning across passes (the daemon logs it once
	// when it appears and once when it goes).
	Key string `json:"key"`
	// Message says it on one line.
	Message string `json:"message"`
	// For a foreign drop: the base chain (Table "ip filter", Chain, Hook,
	// Priority), what in it drops (By: "policy drop", or the rule), what
	// braid meant to let through (Intent, with its ID), which packets,
	// whether it is certain and, if not, why braid cannot tell.
	Table    string   `json:"table,omitempty"`
	Chain    string   `json:"chain,omitempty"`
	Hook     string   `json:"hook,omitempty"`
	Priority *int     `json:"priority,omitempty"`
	By       string   `json:"by,omitempty"`
	IntentID string   `json:"intent_id,omitempty"`
	Intent   string   `json:"intent,omitempty"`
	Packets  []string `json:"packets,omitempty"`
	Certain  bool     `json:"certain,omitempty"`
	Because  []string `json:"because,omitempty"`
	// Firewall names the program the table belongs to, and Fix is its
	// usual fix.
	Firewall string `json:"firewall,omitempty"`
	Fix      string `json:"fix,omitempty"`
}

func (w Warning) String() string { return w.Message }

// Lines writes the warning for a person: its message, then its details
// indented.
func (w Warning) Lines() []string {
	out := []string{w.Message}
	if len(w.Because) > 0 {
		out = append(out, "    braid cannot tell for sure: "+strings.Join(w.Because, "; "))
	}
	if len(w.Packets) > 0 {
		out = append(out, "    packets: "+strings.Join(w.Packets, "; "))
	}
	if w.Fix != "" {
		out = append(out, "    usual fix ("+w.Firewall+"): "+w.Fix)
	}
	return out
}

// CountKind counts the warnings of a kind.
func CountKind(ws []Warning, kind string) int {
	n := 0
	for _, w := range ws {
		if w.Kind == kind {
			n++
		}
	}
	return n
}

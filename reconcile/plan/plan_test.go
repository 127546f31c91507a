package plan

import (
	"strings"
	"testing"
)

type res struct{ addr, v string }

func (r res) Address() string { return r.addr }
func (r res) Fields() []Field { return []Field{{Name: "v", Value: r.v}} }
func owned(r res) Observed    { return Observed{Resource: r} }
func foreign(r res) Observed  { return Observed{Resource: r, Foreign: true} }
func summary(cs []Change) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.Action.Symbol()+c.Address())
	}
	return strings.Join(s, " ")
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name      string
		desired   []Resource
		live      []Observed
		want      string
		conflicts string
	}{
		{"empty", nil, nil, "", ""},
		{"create in desired order", []Resource{res{"b", "1"}, res{"a", "1"}}, nil, "+b +a", ""},
		{"equal is no change", []Resource{res{"a", "1"}}, []Observed{owned(res{"a", "1"})}, "", ""},
		{"update", []Resource{res{"a", "2"}}, []Observed{owned(res{"a", "1"})}, "~a", ""},
		{"delete in reverse live order", nil, []Observed{owned(res{"a", "1"}), owned(res{"b", "1"})}, "-b -a", ""},
		{"foreign in the way is a conflict", []Resource{res{"a", "1"}}, []Observed{foreign(res{"a", "9"})}, "", "a"},
		{"foreign equal is still a conflict", []Resource{res{"a", "1"}}, []Observed{foreign(res{"a", "1"})}, "", "a"},
		{"foreign not wanted is never deleted", nil, []Observed{foreign(res{"a", "1"})}, "", ""},
		{"adds before deletes", []Resource{res{"n", "1"}}, []Observed{owned(res{"o", "1"})}, "+n -o", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, conflicts := Diff(tt.desired, tt.live)
			if got := summary(cs); got != tt.want {
				t.Errorf("changes %q, want %q", got, tt.want)
			}
			var cn []string
			for _, c := range conflicts {
				cn = append(cn, c.Address)
			}
			if got := strings.Join(cn, " "); got != tt.conflicts {
				t.Errorf("conflicts %q, want %q", got, tt.conflicts)
			}
		})
	}
}

func TestInverse(t *testing.T) {
	a, b := res{"x", "1"}, res{"x", "2"}
	for _, tt := range []struct {
		c, want Change
	}{
		{Change{Action: Create, After: a}, Change{Action: Delete, Before: a}},
		{Change{Action: Delete, Before: a}, Change{Action: Create, After: a}},
		{Change{Action: Update, Before: a, After: b}, Change{Action: Update, Before: b, After: a}},
	} {
		if got := tt.c.Inverse(); got != tt.want {
			t.Errorf("Inverse of %v = %v, want %v", tt.c, got, tt.want)
		}
	}
}

func TestSecretFieldsAreRedacted(t *testing.T) {
	f := Field{Name: "password", Value: "hunter2", Secret: true}
	if f.Display() != Redacted {
		t.Fatal("secret displayed")
	}
	if d := Describe(secretRes{}); strings.Contains(d, "hunter2") {
		t.Fatalf("Describe leaks: %s", d)
	}
}

type secretRes struct{}

func (secretRes) Address() string { return "s" }
func (secretRes) Fields() []Field {
	return []Field{{Name: "password", Value: "hunter2", Secret: true}}
}

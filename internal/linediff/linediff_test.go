package linediff

import "testing"

func TestDiff(t *testing.T) {
	for _, c := range []struct{ a, b, want string }{
		{"x\ny", "x\ny", ""},
		{"x\ny\nz", "y\nw", "- x\n- z\n+ w\n"},
		{"", "x", "- \n+ x\n"},
	} {
		if got := Diff(c.a, c.b); got != c.want {
			t.Errorf("Diff(%q, %q) = %q, want %q", c.a, c.b, got, c.want)
		}
	}
}

package netlink

import "testing"

func TestCreatedAlias(t *testing.T) {
	for _, what := range []string{"tunnel/sixpe", "tunnel/a b"} {
		got, ok := CreatedBy(CreatedAlias(what))
		if !ok || got != what {
			t.Errorf("CreatedBy(CreatedAlias(%q)) = %q, %v", what, got, ok)
		}
	}
	for _, alias := range []string{"", "braid:", "braid", "uplink to the ONT", "xbraid:tunnel/x"} {
		if what, ok := CreatedBy(alias); ok {
			t.Errorf("CreatedBy(%q) = %q, true; want not braid's", alias, what)
		}
	}
}

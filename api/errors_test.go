package api

import (
	"errors"
	"testing"
)

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "f.yaml", Line: 3, Col: 5, Path: "spec.uplinks[1].name", Msg: "m"}, "f.yaml:3:5: spec.uplinks[1].name: m"},
		{Error{File: "f.yaml", Line: 1, Col: 1, Msg: "m"}, "f.yaml:1:1: m"},
		{Error{File: "f.yaml", Msg: "empty file"}, "f.yaml: empty file"},
		{Error{Path: "spec.lan", Msg: "m"}, "spec.lan: m"},
		{Error{Msg: "m"}, "m"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%+v.Error() = %q, want %q", tc.e, got, tc.want)
		}
	}
}

func TestErrorsSortAndUnwrap(t *testing.T) {
	e := &Errors{List: []Error{
		{File: "f", Line: 2, Col: 1, Path: "b", Msg: "3"},
		{File: "f", Line: 1, Col: 9, Path: "a", Msg: "2"},
		{File: "f", Msg: "1"},
		{File: "f", Line: 2, Col: 1, Path: "a", Msg: "second a"},
		{File: "f", Line: 1, Col: 2, Path: "z", Msg: "first"},
	}}
	e.sort()
	want := "f: 1\nf:1:2: z: first\nf:1:9: a: 2\nf:2:1: a: second a\nf:2:1: b: 3"
	if got := e.Error(); got != want {
		t.Errorf("sorted:\n%s\nwant:\n%s", got, want)
	}
	var one Error
	if !errors.As(error(e), &one) || one.Msg != "1" {
		t.Errorf("errors.As(*Errors, *Error) = %v", one)
	}
}

// TestValidateWithoutPositions validates a document built in Go: the
// errors name paths but have no file or position.
func TestValidateWithoutPositions(t *testing.T) {
	d := &Document{APIVersion: APIVersion, Kind: KindRouter, Metadata: Metadata{Name: "x"},
		Router: &RouterSpec{
			Uplinks: []Uplink{{Name: "a", Interface: "eth1", IPv4: &UplinkIPv4{DHCP: &DHCPv4{}}}, {Interface: "eth1"}},
			Routes:  []RouteRule{{To: []string{"10.0.0.1/8"}, Via: "b"}},
		}}
	SetDefaults(d)
	err := Validate(d)
	want := `spec.routes[0].to[0]: "10.0.0.1/8" has host bits set; did you mean "10.0.0.0/8"?
spec.routes[0].via: unknown uplink "b" (uplinks: a)
spec.uplinks[1]: missing required field "name"
spec.uplinks[1]: uplink has neither ipv4 nor ipv6
spec.uplinks[1].interface: interface "eth1" is already used by spec.uplinks[0]`
	if err == nil || err.Error() != want {
		t.Errorf("Validate:\n%v\nwant:\n%s", err, want)
	}

	if err := Validate(&Document{}); err == nil || err.Error() != `missing required field "apiVersion"
missing required field "kind"
metadata: missing required field "name"` {
		t.Errorf("Validate(empty document):\n%v", err)
	}
	if err := Validate(&Document{APIVersion: APIVersion, Kind: KindPeer, Metadata: Metadata{Name: "p"}}); err == nil || err.Error() != `missing required field "spec"` {
		t.Errorf("Validate(peer without spec):\n%v", err)
	}
}

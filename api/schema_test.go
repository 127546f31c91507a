package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dlclark/regexp2"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v4"
)

// TestSchemaFile checks that the committed schema.json is JSONSchema: a
// change to the field table or the defaults without `go generate ./api`
// fails here (a change to the doc comments fails
// internal/schemagen's test).
func TestSchemaFile(t *testing.T) {
	want, err := os.ReadFile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if got := JSONSchema(); !bytes.Equal(got, want) {
		t.Fatalf("schema.json is not what JSONSchema returns: run go generate ./api\n%s", firstDiff(got, want))
	}
}

// firstDiff shows the first line where a and b differ.
func firstDiff(a, b []byte) string {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range max(len(la), len(lb)) {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n got  %q\n want %q", i+1, x, y)
		}
	}
	return "same lines"
}

// compileSchema compiles JSONSchema with a JSON Schema validator. Its
// patterns run twice: as Go's regexp reads them, and as ECMA-262 (the
// JavaScript of editors' YAML language servers) does.
func compileSchema(t testing.TB) bothEngines {
	t.Helper()
	return bothEngines{compileSchemaWith(t, nil), compileSchemaWith(t, ecmaRegexp)}
}

// bothEngines is the schema compiled with each regular expression engine.
type bothEngines [2]*jsonschema.Schema

// Validate validates v with both; the error says which engine refused.
func (b bothEngines) Validate(v any) error {
	goErr, jsErr := b[0].Validate(v), b[1].Validate(v)
	if (goErr == nil) != (jsErr == nil) {
		return fmt.Errorf("the regular expression engines disagree: Go: %v; ECMA-262: %v", goErr, jsErr)
	}
	return goErr
}

// ecmaRegexp compiles a pattern as JavaScript does.
func ecmaRegexp(s string) (jsonschema.Regexp, error) {
	re, err := regexp2.Compile(s, regexp2.ECMAScript)
	if err != nil {
		return nil, err
	}
	return ecma{re}, nil
}

type ecma struct{ re *regexp2.Regexp }

func (e ecma) MatchString(s string) bool {
	ok, err := e.re.MatchString(s)
	return err == nil && ok
}

func (e ecma) String() string { return e.re.String() }

// compileSchemaWith compiles JSONSchema with the given regular expression
// engine (nil: Go's regexp).
func compileSchemaWith(t testing.TB, engine jsonschema.RegexpEngine) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(JSONSchema()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseRegexpEngine(engine)
	if err := c.AddResource("schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("schema.json")
	if err != nil {
		t.Fatalf("compile the schema: %v", err)
	}
	return s
}

// yamlInstance reads a YAML file as the JSON value an editor's YAML
// language server validates.
func yamlInstance(file string) (any, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return yamlValue(data)
}

// yamlValue reads YAML as the JSON value an editor's YAML language server
// validates.
func yamlValue(data []byte) (any, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

// TestSchemaAcceptsValid checks the schema against every spec braid
// accepts: the examples (specs/ and its subfolders) and testdata/valid.
// The schema may accept what braid refuses, never the reverse.
func TestSchemaAcceptsValid(t *testing.T) {
	s := compileSchema(t)
	files := specFiles(t)
	more, err := filepath.Glob("testdata/valid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, more...) {
		t.Run(f, func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Fatalf("braid refuses it:\n%v", err)
			}
			v, err := yamlInstance(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(v); err != nil {
				t.Fatalf("the schema refuses what braid accepts:\n%v", err)
			}
		})
	}
}

// FuzzSchemaAcceptsParsed checks, on every spec Parse accepts, that the
// schema accepts it too: an editor never flags a spec braid takes.
func FuzzSchemaAcceptsParsed(f *testing.F) {
	addSpecSeeds(f)
	s := compileSchema(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := Parse("fuzz.yaml", data); err != nil {
			return
		}
		v, err := yamlValue(data)
		if err != nil {
			// Not JSON (an infinite number, say): no editor sees
			// it as the schema's instance.
			return
		}
		if err := s.Validate(v); err != nil {
			t.Errorf("the schema refuses what braid accepts:\n%s\n%v", data, err)
		}
	})
}

// TestSchemaAcceptsOddScalars checks the README's promise on values braid
// takes in its own way: a scalar as the string it is written as, an empty
// value as unset, an empty section as its defaults.
func TestSchemaAcceptsOddScalars(t *testing.T) {
	s := compileSchema(t)
	for _, uplink := range []string{
		"{name: a, interface: eth1, ipv4: {dhcp: {vendorClass: 123, hostname: true}}}",
		"{name: 4g, interface: 0, ipv4: {dhcp: {}}}",
		"{name: a, interface: eth1, ipv4: {dhcp: }}",
		"{name: a, interface: eth1, ipv4: {dhcp: null}}",
		"{name: a, interface: eth1, ipv4: {dhcp: {}}, priority: null, mtu: , macAddress: ''}",
		"{name: a, interface: eth1, ipv4: {dhcp: {}}, mptcp: {mode: ''}}",
		"{name: a, interface: eth1, ipv4: {dhcp: {}}, mptcp: {mode: null}}",
		"{name: a, interface: eth1, ipv4: {dhcp: {}}, mptcp: }",
		"{name: a, interface: eth1, ipv6: {ra: {}}}",
		"{name: a, interface: eth1, ipv6: {ra: }}",
		"{name: a, interface: eth1, ipv4: {dhcp: {}}, health: {probes: [{icmp: 192.0.2.1, name: ''}]}}",
	} {
		spec := "apiVersion: braid/v1alpha1\nkind: Router\nmetadata: {name: x}\nspec:\n  uplinks:\n  - " + uplink + "\n"
		if _, err := Parse("odd.yaml", []byte(spec)); err != nil {
			t.Errorf("braid refuses %s (the case is wrong):\n%v", uplink, err)
			continue
		}
		v, err := yamlValue([]byte(spec))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(v); err != nil {
			t.Errorf("the schema refuses %s, which braid accepts:\n%v", uplink, err)
		}
	}
}

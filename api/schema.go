package api

//go:generate go run ../internal/schemagen -docs docs_gen.go
//go:generate go run ../internal/schemagen -schema schema.json

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// SchemaDraft is the JSON Schema dialect JSONSchema writes.
const SchemaDraft = "https://json-schema.org/draft/2020-12/schema"

// JSONSchema returns a JSON Schema (draft 2020-12) of a spec file, both
// kinds: a document whose kind is Router has a RouterSpec as its spec, one
// whose kind is Peer a PeerSpec. It is generated from the field table (json
// names, required, enum, format) with the types' doc comments as
// descriptions and the defaults SetDefaults fills in; `go generate` keeps
// the doc comments (docs_gen.go) and the committed schema.json in step.
//
// The schema checks what one field says about itself: names, types,
// required fields, enums, the formats as patterns (a necessary condition,
// not always a sufficient one: 999.1.1.1/8 has the shape of a prefix) and
// a secret's one source. The rules spanning fields (references, unique
// names, families, exactly one of two sections) are braid's alone: a
// file the schema accepts may still fail braid validate, never the
// reverse.
func JSONSchema() []byte {
	b, err := buildSchema(docOf)
	if err != nil {
		// The types are fixed at compile time and TestSchemaFile
		// builds them: an error here is a bug in this file.
		panic(err)
	}
	return b
}

// schemaDefaults are the defaults SetDefaults fills in for a field that is
// not written, by TYPE.FIELD (Go names), for the schema's "default".
// Defaults computed from other values (an uplink's priority and table) are
// said in the fields' descriptions instead.
var schemaDefaults = map[string]any{
	"MPTCP.Mode":               MPTCPSubflow,
	"Health.Interval":          DefaultHealthInterval,
	"Health.FailAfter":         DefaultHealthFailAfter,
	"Health.RecoverAfter":      DefaultHealthRecoverAfter,
	"OpenPort.Proto":           DefaultProto,
	"PortForward.Proto":        DefaultProto,
	"Aggregation.TCP":          TCPProxy,
	"Aggregation.UDP":          UDPPeer,
	"AggregationPeer.Protocol": DefaultProtocol,
	"AggregationPeer.Cipher":   DefaultCipher,
	"PeerSpec.Cipher":          DefaultCipher,
	"DNS.AAAA":                 DefaultAAAA,
	"PPP.Keepalive":            DefaultPPPKeepalive,
	"PPP.KeepaliveFailures":    DefaultPPPKeepaliveFailures,
}

// Patterns of the formats (see formats), in the regular expression syntax
// common to Go and ECMA-262, as editors run them. Each is a necessary
// condition of its format: whatever braid accepts matches, and the exact
// check (an address's octets, a port's range) stays braid's.
const (
	ipv4Pattern     = `[0-9]{1,3}(\.[0-9]{1,3}){3}`
	ipv6Pattern     = `[0-9A-Fa-f.]*(:[0-9A-Fa-f.]*){2,}` // at least two colons; unambiguous, so a backtracking engine stays linear
	prefixPattern   = `(` + ipv4Pattern + `/[0-9]{1,2}|` + ipv6Pattern + `/[0-9]{1,3})`
	ipPattern       = `(` + ipv4Pattern + `|` + ipv6Pattern + `(%.+)?)`
	addrPortPattern = `(` + ipv4Pattern + `|\[` + ipv6Pattern + `(%[^\]]+)?\]):[0-9]{1,5}`
)

var formatPatterns = map[string]string{
	"cidr":     `^` + prefixPattern + `$`,
	"ifaddr":   `^` + prefixPattern + `$`,
	"ip":       `^` + ipPattern + `$`,
	"hostport": `^(\[[^\]]+\]|[^:\[\]]+):[0-9]{1,5}$`,
	"ifname":   `^[^/:\x00-\x20\x7f]{1,15}$`,
	"name":     `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`,
	"duration": `^\+?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`,
	"resolver": `^(` + ipPattern + `|` + addrPortPattern + `)$`,
	"domain":   `^[a-z0-9-]+(\.[a-z0-9-]+)*$`,
	"mac":      `^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`,
	"addrport": `^` + addrPortPattern + `$`,
}

// formatDescriptions say in words what each format's pattern checks.
var formatDescriptions = map[string]string{
	"cidr":     "a prefix, ADDRESS/LENGTH with the host bits clear (192.168.1.0/24)",
	"ifaddr":   "an interface address, ADDRESS/LENGTH (192.168.1.1/24)",
	"ip":       "an IP address",
	"hostport": "HOST:PORT, [ADDRESS]:PORT for IPv6",
	"ifname":   "a Linux interface name, 1..15 bytes",
	"name":     "a lowercase DNS label",
	"duration": "a positive Go duration (500ms, 2s, 1m30s)",
	"resolver": "ADDRESS or ADDRESS:PORT ([ADDRESS]:PORT for IPv6)",
	"domain":   "a lowercase DNS name (example.com)",
	"mac":      "a unicast MAC address in lower case with colons",
	"addrport": "ADDRESS:PORT ([ADDRESS]:PORT for IPv6)",
}

// object is a JSON object of the schema.
type object = map[string]any

// schemaBuilder collects the definitions of the spec's types.
type schemaBuilder struct {
	tables   tables
	doc      func(key string) string
	defs     object
	defaults map[string]bool // the schemaDefaults used
}

// buildSchema builds the schema with doc giving the doc comments, by type
// ("Uplink") and field ("Uplink.MTU").
func buildSchema(doc func(key string) string) ([]byte, error) {
	b := &schemaBuilder{tables: make(tables), doc: doc, defs: object{}, defaults: map[string]bool{}}
	b.define(reflect.TypeFor[RouterSpec]())
	b.define(reflect.TypeFor[PeerSpec]())
	b.define(reflect.TypeFor[Metadata]())
	for k := range schemaDefaults {
		if !b.defaults[k] {
			return nil, fmt.Errorf("api: schema default %s names no field", k)
		}
	}
	docField := func(goName, name string) string {
		d := describeText(doc("Document." + goName))
		if rest, ok := strings.CutPrefix(d, goName+" "); ok {
			d = name + " " + rest
		}
		return d
	}
	kindIs := func(kind, spec string) object {
		return object{
			"if":   object{"properties": object{"kind": object{"const": kind}}, "required": []string{"kind"}},
			"then": object{"properties": object{"spec": object{"$ref": "#/$defs/" + spec}}},
		}
	}
	s := object{
		"$schema":              SchemaDraft,
		"$id":                  "https://github.com/braid-router/braid/api/schema.json",
		"title":                "braid spec",
		"description":          "A braid spec: a Router (a box with several uplinks) or a Peer (the aggregation server); see braid's README, The spec.",
		"type":                 "object",
		"required":             []string{"apiVersion", "kind", "metadata", "spec"},
		"additionalProperties": false,
		"properties": object{
			"apiVersion": object{"description": docField("APIVersion", "apiVersion"), "const": APIVersion},
			"kind":       object{"description": docField("Kind", "kind"), "enum": []string{KindRouter, KindPeer}},
			"metadata":   object{"description": docField("Metadata", "metadata"), "$ref": "#/$defs/Metadata"},
			"spec":       object{"description": "The desired state: a RouterSpec when kind is Router, a PeerSpec when kind is Peer.", "type": "object"},
		},
		"allOf": []any{kindIs(KindRouter, "RouterSpec"), kindIs(KindPeer, "PeerSpec")},
		"$defs": b.defs,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("api: encode schema: %w", err)
	}
	return buf.Bytes(), nil
}

// define adds struct type t, and the types of its fields, to the
// definitions.
func (b *schemaBuilder) define(t reflect.Type) {
	name := t.Name()
	if _, ok := b.defs[name]; ok {
		return
	}
	def := object{"type": "object", "additionalProperties": false}
	b.defs[name] = def // before the fields: a type may refer to itself
	if d := describeText(b.doc(name)); d != "" {
		def["description"] = d
	}
	props := object{}
	var required []string
	for _, f := range b.tables.of(t).fields {
		sf := t.Field(f.index)
		key := name + "." + sf.Name
		// A secret's fields are never null: null would count as a
		// second source for the schema's one-property rule.
		p := b.fieldSchema(f, t != reflect.TypeFor[Secret]())
		if d := describeText(b.doc(key)); d != "" {
			// The doc starts with the Go name; the reader writes the
			// YAML one.
			if rest, ok := strings.CutPrefix(d, sf.Name+" "); ok {
				d = f.name + " " + rest
			}
			p["description"] = d
		}
		if v, ok := schemaDefaults[key]; ok {
			p["default"] = v
			b.defaults[key] = true
		}
		props[f.name] = p
		if f.required {
			required = append(required, f.name)
		}
	}
	def["properties"] = props
	if len(required) > 0 {
		def["required"] = required
	}
	switch {
	case t == reflect.TypeFor[Secret]():
		// Exactly one source (checkSecret).
		def["minProperties"] = 1
		def["maxProperties"] = 1
	case len(required) == 0:
		// Written empty ("dhcp:" alone), it is the section with its
		// defaults; one with required fields would miss them.
		def["type"] = []string{"object", "null"}
	}
}

// fieldSchema is the schema of one field's value. An optional field may
// be written empty ("dhcp:" alone, or null), which braid takes as unset;
// a required one may not.
func (b *schemaBuilder) fieldSchema(f field, mayBeEmpty bool) object {
	s := b.typeSchema(f.typ, f)
	if f.required || !mayBeEmpty {
		switch f.typ.Kind() {
		case reflect.String:
			s["minLength"] = 1
		case reflect.Slice:
			s["minItems"] = 1
		}
		return s
	}
	return nullable(s)
}

// nullable lets s also be null, and a string with an enum or a format
// also be empty: braid takes both as unset. A struct's own definition says
// whether it may be null (define).
func nullable(s object) object {
	if e, ok := s["enum"].([]string); ok {
		s["enum"] = append(toAny(e), "", nil)
	}
	if p, ok := s["pattern"].(string); ok {
		s["pattern"] = "^$|" + p
	}
	switch t := s["type"].(type) {
	case []string:
		s["type"] = append(slices.Clone(t), "null")
	case string:
		s["type"] = []string{t, "null"}
	}
	return s
}

// typeSchema is the schema of a value of type t in field f.
func (b *schemaBuilder) typeSchema(t reflect.Type, f field) object {
	switch t.Kind() {
	case reflect.Pointer:
		return b.typeSchema(t.Elem(), f)
	case reflect.Struct:
		b.define(t)
		return object{"$ref": "#/$defs/" + t.Name()}
	case reflect.Slice:
		return object{"type": "array", "items": b.typeSchema(t.Elem(), f)}
	case reflect.Int:
		return object{"type": "integer"}
	case reflect.Bool:
		return object{"type": "boolean"}
	case reflect.String:
		switch {
		case len(f.enum) > 0:
			// errorMessage is what yaml-language-server says for a
			// value not in the enum: braid's own words.
			return object{"type": "string", "enum": f.enum, "errorMessage": "want " + oneOf(f.enum)}
		case f.format != "":
			p, ok := formatPatterns[f.format]
			if !ok {
				panic("api: no pattern for format " + f.format)
			}
			// patternErrorMessage is what yaml-language-server says
			// when the pattern does not match.
			typ := any("string")
			switch f.format {
			case "name", "ifname", "domain":
				// 4g, 1e5 and true are names too: YAML reads them as
				// numbers and booleans, which braid takes as written.
				typ = []string{"string", "number", "boolean"}
			}
			return object{"type": typ, "pattern": p, "patternErrorMessage": "want " + formatDescriptions[f.format]}
		case f.secret:
			return object{"type": "string"}
		}
		// Any scalar is taken as the string it is written as
		// (vendorClass: 123 is "123").
		return object{"type": []string{"string", "number", "boolean"}}
	}
	panic(fmt.Sprintf("api: no schema for type %s", t))
}

// describeText turns a doc comment into a description: its paragraphs,
// each on one line.
func describeText(doc string) string {
	var paras []string
	for p := range strings.SplitSeq(strings.TrimSpace(doc), "\n\n") {
		if p = strings.Join(strings.Fields(p), " "); p != "" {
			paras = append(paras, p)
		}
	}
	return strings.Join(paras, "\n\n")
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// Package api defines braid's spec: the Go types a YAML file decodes into,
// strict decoding with positions, defaults and validation. It performs no
// I/O beyond reading the spec file; secrets are references resolved when
// applied.
//
// # Reading a spec
//
// Load reads a file and Parse decodes bytes; both return the effective
// document (defaults filled in, validated) or an *Errors listing every
// problem found in one run, sorted by position, one per line:
//
//	home.yaml:12:5: spec.uplinks[0]: unknown field "prority"; did you mean "priority"?
//	home.yaml:20:19: spec.uplinks[1].mptcp.mode: invalid value "bakup": want subflow, backup or off; did you mean "backup"?
//	home.yaml: empty file; want a braid spec (apiVersion, kind, metadata, spec)
//
// Lines and columns are 1-based and come from the YAML node tree (syntax
// errors included). A problem with a field reports the position of its
// value; a missing required field the position of the mapping that lacks
// it; an unknown or duplicate field the position of its key.
//
// Decoding is strict: unknown fields, values of the wrong type, duplicate
// keys and missing required fields are errors; a scalar written where a
// string is wanted is taken as written (vendorClass: 123 is "123"); an
// empty section ("dhcp:" alone) is the section with its defaults.
//
// Whole-file problems are reported alone, before anything else is
// decoded: a file larger than MaxFileSize, binary content (a NUL byte),
// invalid UTF-8, a syntax error, an empty file, more than one YAML
// document, a top level that is not a mapping. Anchors and aliases are
// allowed, but all alias expansions together may visit at most 10,000
// nodes, which stops alias bombs (reported alone too); merge keys (<<) are
// not supported.
//
// # The field table
//
// The struct tags on the types are the one description of the schema:
// json (the field name), required, enum (the allowed values), format (cidr,
// ifaddr, ip, hostport, ifname, name, duration, resolver, domain, mac,
// addrport) and secret. The decoder,
// the validator and Effective are all driven by them; see fields.go.
//
// # Defaults and validation
//
// SetDefaults holds every default, and nothing else sets one. Validate
// checks the tags and the rules spanning fields (unique names, references
// that resolve, an interface claimed once, address families, ranges). A
// document built in Go goes through SetDefaults, then Validate; its errors
// have no position.
//
// Effective prints a document back as YAML that Parse accepts, with inline
// secret values redacted.
//
// # JSON Schema
//
// JSONSchema returns a JSON Schema of both kinds of spec, for editors,
// built from the same field table, the defaults and the types' doc
// comments (docs_gen.go, written by go generate); schema.json is its
// committed copy, which the example specs name. It checks each field on
// its own and accepts whatever Parse accepts; the rules spanning fields
// are Parse's alone.
//
// # Secrets
//
// A Secret is {value: ...}, {file: PATH} or {env: NAME}. Resolve reads it
// when the spec is applied. Its value never appears in output: String,
// fmt verbs, slog, JSON, YAML and Effective all print "(sensitive)" in its
// place, and no error message quotes it.
package api

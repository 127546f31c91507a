package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"

	"go.yaml.in/yaml/v4"
)

// Effective returns d as YAML, as Parse would accept it: fields in the
// order of the types, empty optional fields left out, and inline secret
// values replaced by "(sensitive)". For the document Parse returns, that is
// the spec with every default filled in; without an inline secret it
// parses back to the same document.
func Effective(d *Document) ([]byte, error) {
	if d == nil {
		return nil, errors.New("effective spec: no document")
	}
	var buf bytes.Buffer
	enc, err := yaml.NewDumper(&buf, yaml.WithIndent(2), yaml.WithCompactSeqIndent(), yaml.WithLineWidth(-1))
	if err != nil {
		return nil, fmt.Errorf("effective spec: %w", err)
	}
	if err := enc.Dump(d.node()); err != nil {
		return nil, fmt.Errorf("effective spec: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("effective spec: %w", err)
	}
	return buf.Bytes(), nil
}

// node returns d as a YAML node tree, secrets redacted.
func (d *Document) node() *yaml.Node {
	return encodeValue(make(tables), reflect.ValueOf(shapeOf(d)).Elem().Interface())
}

// MarshalYAML encodes the document as Effective does, with its spec under
// "spec" and secrets redacted.
func (d Document) MarshalYAML() (any, error) {
	return d.node(), nil
}

// MarshalJSON encodes the document with its spec under "spec" and secrets
// redacted.
func (d Document) MarshalJSON() ([]byte, error) {
	return json.Marshal(shapeOf(&d))
}

// flow reports whether values of type t are written in flow style
// ({icmp: 192.0.2.1}) in the effective spec: small mappings of scalars.
func flow(t reflect.Type) bool {
	switch t {
	case reflect.TypeFor[Probe](), reflect.TypeFor[Static](), reflect.TypeFor[MPTCP](),
		reflect.TypeFor[Secret](), reflect.TypeFor[DHCPv6]():
		return true
	}
	return false
}

// encodeValue returns v as a YAML node, driven by the field table: fields
// by their json names, zero optional fields left out, secret fields
// redacted.
func encodeValue(ts tables, v any) *yaml.Node {
	return encode(ts, reflect.ValueOf(v))
}

func encode(ts tables, v reflect.Value) *yaml.Node {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
		}
		return encode(ts, v.Elem())
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		if flow(v.Type()) {
			n.Style = yaml.FlowStyle
		}
		ft := ts.of(v.Type())
		for _, f := range ft.fields {
			fv := v.Field(f.index)
			if fv.IsZero() && (f.omitempty || fv.Kind() == reflect.Pointer || fv.Kind() == reflect.Slice) {
				continue
			}
			val := encode(ts, fv)
			if f.secret && fv.Kind() == reflect.String && fv.String() != "" {
				val = scalar("!!str", Redacted)
			}
			n.Content = append(n.Content, scalar("!!str", f.name), val)
		}
		return n
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		switch v.Type().Elem().Kind() {
		case reflect.String, reflect.Int, reflect.Bool:
			n.Style = yaml.FlowStyle
		}
		for i := range v.Len() {
			n.Content = append(n.Content, encode(ts, v.Index(i)))
		}
		return n
	case reflect.String:
		return scalar("!!str", v.String())
	case reflect.Int:
		return scalar("!!int", strconv.FormatInt(v.Int(), 10))
	case reflect.Bool:
		return scalar("!!bool", strconv.FormatBool(v.Bool()))
	}
	panic("api: cannot encode " + v.Type().String())
}

func scalar(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

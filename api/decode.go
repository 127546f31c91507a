package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v4"
)

// MaxFileSize is the largest spec file Load and Parse accept, in bytes.
const MaxFileSize = 1 << 20

// MaxErrors is the most problems reported for one file; more are
// summarized in one last line.
const MaxErrors = 100

// maxAliasNodes bounds the work aliases can cause. Anchors and aliases are
// allowed (to share a list of probes between uplinks, say), but all the
// nodes visited through aliases together may not exceed this many, which
// stops "billion laughs" alias bombs long before they cost anything. Merge
// keys (<<) are not supported.
const maxAliasNodes = 10000

// Load reads the spec file at path and parses it with Parse. A file that
// cannot be read is reported as the underlying error; problems with its
// content as *Errors.
func Load(path string) (*Document, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > MaxFileSize {
		return nil, tooLarge(path, st.Size())
	}
	// Read one byte past the limit so Parse sees an oversized stream too.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes a spec, fills in its defaults (see SetDefaults) and
// validates it, returning the effective document. filename is used only in
// messages.
//
// Decoding is strict: unknown fields, values of the wrong type, duplicate
// keys and missing required fields are errors. Every problem found is
// reported in one *Errors, sorted by position; whole-file problems (empty,
// not a mapping, binary, too large, several documents, an alias bomb, a
// syntax error) are reported alone.
func Parse(filename string, data []byte) (*Document, error) {
	root, errs := parseYAML(filename, data)
	if errs != nil {
		return nil, errs
	}
	r := newRun(filename)
	d := r.decodeDocument(root)
	if r.aborted {
		return nil, fileError(filename, "aliases expand to more than %d nodes; write the values out or use fewer aliases", maxAliasNodes)
	}
	SetDefaults(d)
	r.validate(d)
	if err := r.result(); err != nil {
		return nil, err
	}
	d.file, d.pos = filename, r.pos
	return d, nil
}

func tooLarge(file string, size int64) *Errors {
	return fileError(file, "file is larger than 1 MiB (%d bytes); a spec is a small text file", size)
}

// parseYAML runs the whole-file checks and the YAML parser, and returns the
// top-level mapping.
func parseYAML(file string, data []byte) (*yaml.Node, *Errors) {
	if len(data) > MaxFileSize {
		return nil, tooLarge(file, int64(len(data)))
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return nil, fileError(file, "binary file (NUL byte at offset %d); a spec is YAML text", i)
	}
	if !utf8.Valid(data) {
		i := 0
		for i < len(data) {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		line, col := lineCol(data, i)
		return nil, &Errors{List: []Error{{File: file, Line: line, Col: col, Msg: "invalid UTF-8; a spec is UTF-8 text"}}}
	}
	l, err := yaml.NewLoader(bytes.NewReader(data), yaml.WithUniqueKeys(false))
	if err != nil {
		return nil, fileError(file, "yaml: %v", err)
	}
	var doc yaml.Node
	switch err := l.Load(&doc); {
	case errors.Is(err, io.EOF):
		return nil, fileError(file, "empty file; want a braid spec (apiVersion, kind, metadata, spec)")
	case err != nil:
		return nil, syntaxError(file, data, err)
	}
	var next yaml.Node
	switch err := l.Load(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, fileError(file, "more than one YAML document; a spec file holds exactly one")
	default:
		return nil, &Errors{List: []Error{{File: file, Line: next.Line, Col: next.Column,
			Msg: "more than one YAML document; a spec file holds exactly one"}}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, fileError(file, "empty file; want a braid spec (apiVersion, kind, metadata, spec)")
		}
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, fileError(file, "empty file; want a braid spec (apiVersion, kind, metadata, spec)")
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Errors{List: []Error{{File: file, Line: root.Line, Col: root.Column,
			Msg: fmt.Sprintf("want a mapping (apiVersion, kind, metadata, spec), got %s", describe(root))}}}
	}
	return root, nil
}

// syntaxError converts the YAML parser's error into an Error with its
// position.
func syntaxError(file string, data []byte, err error) *Errors {
	var le *yaml.LoadError
	if !errors.As(err, &le) {
		return fileError(file, "yaml: %v", err)
	}
	msg := le.Message
	if le.ContextMsg != "" && le.ContextMark.Line > 0 && le.ContextMark != le.Mark {
		msg += fmt.Sprintf(" (%s at line %d, column %d)", le.ContextMsg, le.ContextMark.Line, le.ContextMark.Column)
	}
	if i := le.Mark.Index; i >= 0 && i < len(data) && data[i] == '\t' {
		msg += "; indent with spaces, not tabs"
	}
	return &Errors{List: []Error{{File: file, Line: le.Mark.Line, Col: le.Mark.Column, Msg: msg}}}
}

// lineCol returns the 1-based line and column (in runes) of byte offset i.
func lineCol(data []byte, i int) (line, col int) {
	before := data[:i]
	line = bytes.Count(before, []byte("\n")) + 1
	start := bytes.LastIndexByte(before, '\n') + 1
	return line, utf8.RuneCount(before[start:]) + 1
}

// The shapes a document decodes into, by kind. Their tags are the field
// table of the top level; spec takes the type its kind calls for.
type (
	routerDocument struct {
		APIVersion string      `json:"apiVersion" required:"true"`
		Kind       string      `json:"kind" required:"true" enum:"Router,Peer"`
		Metadata   *Metadata   `json:"metadata" required:"true"`
		Spec       *RouterSpec `json:"spec" required:"true"`
	}
	peerDocument struct {
		APIVersion string    `json:"apiVersion" required:"true"`
		Kind       string    `json:"kind" required:"true" enum:"Router,Peer"`
		Metadata   *Metadata `json:"metadata" required:"true"`
		Spec       *PeerSpec `json:"spec" required:"true"`
	}
	// unknownDocument is the shape when kind is missing or wrong: spec is
	// not decoded, since nothing says what it should hold.
	unknownDocument struct {
		APIVersion string    `json:"apiVersion" required:"true"`
		Kind       string    `json:"kind" required:"true" enum:"Router,Peer"`
		Metadata   *Metadata `json:"metadata" required:"true"`
		Spec       *rawSpec  `json:"spec,omitempty"`
	}
)

// rawSpec stands for a spec that is not decoded.
type rawSpec struct{}

var rawSpecType = reflect.TypeFor[rawSpec]()

// shapeOf returns the top-level shape of d, sharing d's fields.
func shapeOf(d *Document) any {
	switch d.Kind {
	case KindRouter:
		return &routerDocument{d.APIVersion, d.Kind, &d.Metadata, d.Router}
	case KindPeer:
		return &peerDocument{d.APIVersion, d.Kind, &d.Metadata, d.Peer}
	}
	return &unknownDocument{d.APIVersion, d.Kind, &d.Metadata, nil}
}

// position is a 1-based line and column.
type position struct{ line, col int }

// run is the state of one Parse or Validate: the problems found so far and
// where each decoded value came from.
type run struct {
	file   string
	errs   []Error
	tables tables
	// pos maps the path of every value decoded to its position; nil for a
	// document built in Go. A path missing from pos (and from elems) was
	// not in the file.
	pos map[string]position
	// elems maps the path of a list of strings to the positions of its
	// elements, so that decoding 10,000 prefixes does not build 10,000
	// paths (see at).
	elems map[string][]position
	// failed holds the paths of values that could not be decoded; later
	// checks stay quiet about them and what they contain.
	failed map[string]bool
	// aliasDepth counts the aliases being expanded; aliasNodes the nodes
	// visited through them.
	aliasDepth, aliasNodes int
	aborted                bool
}

func newRun(file string) *run {
	return &run{
		file:   file,
		tables: make(tables),
		pos:    make(map[string]position),
		elems:  make(map[string][]position),
		failed: make(map[string]bool),
	}
}

// result returns the problems found, sorted, or nil. Past MaxErrors, the
// rest are counted in one last line.
func (r *run) result() error {
	if len(r.errs) == 0 {
		return nil
	}
	e := &Errors{List: r.errs}
	e.sort()
	if n := len(e.List); n > MaxErrors {
		e.List = append(e.List[:MaxErrors], Error{File: r.file, Msg: fmt.Sprintf("too many errors (%d more not shown)", n-MaxErrors)})
	}
	return e
}

// errorAt records a problem at node n.
func (r *run) errorAt(n *yaml.Node, path, format string, args ...any) {
	r.errs = append(r.errs, Error{File: r.file, Line: n.Line, Col: n.Column, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// errorf records a problem with the value at path, at the position of that
// value or, when it was not in the file, of its nearest ancestor. Problems
// with a value that failed to decode, or inside one, are dropped: the
// decoding error already says what is wrong.
func (r *run) errorf(path, format string, args ...any) {
	if r.suppressed(path) {
		return
	}
	e := Error{File: r.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	for p := path; r.pos != nil; p = parent(p) {
		if at, ok := r.at(p); ok {
			e.Line, e.Col = at.line, at.col
			break
		}
		if p == "" {
			break
		}
	}
	r.errs = append(r.errs, e)
}

// suppressed reports whether path or one of its ancestors failed to decode.
func (r *run) suppressed(path string) bool {
	for p := path; ; p = parent(p) {
		if r.failed[p] {
			return true
		}
		if p == "" {
			return false
		}
	}
}

// present reports whether the value v at path was written in the file. For
// a document built in Go, it reports whether v is set.
func (r *run) present(path string, v reflect.Value) bool {
	if r.pos == nil {
		return !v.IsZero()
	}
	return r.written(path)
}

// written reports whether the value at path was written in the file.
func (r *run) written(path string) bool {
	_, ok := r.at(path)
	return ok
}

// at returns the position of the value at path, if it was in the file.
func (r *run) at(path string) (position, bool) {
	if p, ok := r.pos[path]; ok {
		return p, true
	}
	// An element of a list of strings: "LIST[i]".
	i := strings.LastIndexByte(path, '[')
	if i < 0 || !strings.HasSuffix(path, "]") {
		return position{}, false
	}
	n, err := strconv.Atoi(path[i+1 : len(path)-1])
	if ps := r.elems[path[:i]]; err != nil || n < 0 || n >= len(ps) {
		return position{}, false
	}
	return r.elems[path[:i]][n], true
}

// parent returns the path of the value containing path's value.
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// join returns the path of field name inside the value at path.
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// index returns the path of element i of the list at path.
func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// decodeDocument decodes the top-level mapping into a Document, choosing
// the shape of spec from kind.
func (r *run) decodeDocument(root *yaml.Node) *Document {
	kind := ""
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k, v := root.Content[i], resolveAlias(root.Content[i+1]); k.Value == "kind" && v.Kind == yaml.ScalarNode {
			kind = v.Value
			break
		}
	}
	d := &Document{}
	switch kind {
	case KindRouter:
		var s routerDocument
		r.decode(root, reflect.ValueOf(&s).Elem(), "")
		d.APIVersion, d.Kind, d.Router = s.APIVersion, s.Kind, s.Spec
		if s.Metadata != nil {
			d.Metadata = *s.Metadata
		}
	case KindPeer:
		var s peerDocument
		r.decode(root, reflect.ValueOf(&s).Elem(), "")
		d.APIVersion, d.Kind, d.Peer = s.APIVersion, s.Kind, s.Spec
		if s.Metadata != nil {
			d.Metadata = *s.Metadata
		}
	default:
		var s unknownDocument
		r.decode(root, reflect.ValueOf(&s).Elem(), "")
		d.APIVersion, d.Kind = s.APIVersion, s.Kind
		if s.Metadata != nil {
			d.Metadata = *s.Metadata
		}
	}
	return d
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// decode stores node n into v, whose path is path, recording the position
// of every value and every problem.
func (r *run) decode(n *yaml.Node, v reflect.Value, path string) {
	if r.aborted {
		return
	}
	r.pos[path] = position{n.Line, n.Column}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			r.errorAt(n, path, "alias to an unknown anchor")
			r.failed[path] = true
			return
		}
		r.aliasDepth++
		defer func() { r.aliasDepth-- }()
		n = n.Alias
	}
	if r.aliasDepth > 0 && !r.spend(1+len(n.Content)) {
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		// "dhcp:" alone asks for a DHCP client with its defaults: an empty
		// section. Any other empty value is left unset, and checks of
		// required fields say so.
		if v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Struct && v.Type().Elem() != rawSpecType {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return
	}
	if v.Kind() == reflect.Pointer {
		if v.Type().Elem() == rawSpecType {
			v.Set(reflect.New(rawSpecType))
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			r.typeError(n, v.Type(), path)
			return
		}
		r.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			r.typeError(n, v.Type(), path)
			return
		}
		if v.Type() == stringsType && r.aliasDepth == 0 {
			r.decodeStrings(n, v, path)
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			if rc := resolveAlias(c); rc.Kind == yaml.ScalarNode && rc.ShortTag() == "!!null" {
				// An empty list item is a mistake, not an item with
				// nothing set.
				r.pos[index(path, i)] = position{c.Line, c.Column}
				r.typeError(rc, v.Type().Elem(), index(path, i))
				continue
			}
			r.decode(c, s.Index(i), index(path, i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			r.typeError(n, v.Type(), path)
			return
		}
		// Any scalar is a string as written: vendorClass: 123 is "123".
		v.SetString(n.Value)
	case reflect.Int:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			r.typeError(n, v.Type(), path)
			return
		}
		if err := n.Decode(&i); err != nil || v.OverflowInt(i) {
			r.errorAt(n, path, "integer %s out of range", n.Value)
			r.failed[path] = true
			return
		}
		v.SetInt(i)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			r.typeError(n, v.Type(), path)
			return
		}
		v.SetBool(b)
	default:
		panic(fmt.Sprintf("api: field %s has unsupported type %s", path, v.Type()))
	}
}

var stringsType = reflect.TypeFor[[]string]()

// decodeStrings decodes sequence n into v, a []string at path, as decode
// does element by element, but without building each element's path:
// the elements' positions go to elems (a list of 10,000 prefixes is most
// of a big spec). An element that is not a plain string is decoded by
// decode, path and all.
func (r *run) decodeStrings(n *yaml.Node, v reflect.Value, path string) {
	out := make([]string, len(n.Content))
	ps := make([]position, len(n.Content))
	for i, c := range n.Content {
		ps[i] = position{c.Line, c.Column}
		if c.Kind == yaml.ScalarNode && c.ShortTag() != "!!null" {
			out[i] = c.Value
			continue
		}
		if rc := resolveAlias(c); rc.Kind == yaml.ScalarNode && rc.ShortTag() == "!!null" {
			// An empty list item is a mistake, not an item with nothing
			// set.
			r.typeError(rc, v.Type().Elem(), index(path, i))
			continue
		}
		r.decode(c, reflect.ValueOf(&out[i]).Elem(), index(path, i))
	}
	r.elems[path] = ps
	v.Set(reflect.ValueOf(out))
}

// spend accounts for n nodes visited through an alias, and aborts the run
// when the budget is exhausted.
func (r *run) spend(n int) bool {
	r.aliasNodes += n
	if r.aliasNodes > maxAliasNodes {
		r.aborted = true
		return false
	}
	return true
}

// decodeStruct decodes mapping n into struct v.
func (r *run) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	ft := r.tables.of(v.Type())
	seen := make(map[string]*yaml.Node)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolveAlias(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			r.errorAt(n.Content[i], path, "want a field name, got %s", describe(k))
			continue
		}
		name := k.Value
		if k.ShortTag() == "!!merge" {
			r.errorAt(n.Content[i], path, "merge keys (<<) are not supported; write the fields out")
			r.failed[path] = true // what is missing was probably in the merge
			continue
		}
		if first, dup := seen[name]; dup {
			r.errorAt(n.Content[i], path, "duplicate field %q (first at line %d, column %d)", name, first.Line, first.Column)
			continue
		}
		seen[name] = n.Content[i]
		f, ok := ft.lookup(name)
		if !ok {
			r.errorAt(n.Content[i], path, "%s", unknownField(name, ft.names()))
			continue
		}
		r.decode(val, v.Field(f.index), join(path, name))
	}
}

func unknownField(name string, known []string) string {
	if s := suggest(name, known); s != "" {
		return fmt.Sprintf("unknown field %q; did you mean %q?", name, s)
	}
	return fmt.Sprintf("unknown field %q (fields here: %s)", name, strings.Join(known, ", "))
}

// typeError reports that node n does not fit type t.
func (r *run) typeError(n *yaml.Node, t reflect.Type, path string) {
	msg := fmt.Sprintf("want %s, got %s", want(t), describe(n))
	if t.Kind() == reflect.Bool && n.Kind == yaml.ScalarNode {
		switch strings.ToLower(n.Value) {
		case "yes", "no", "on", "off", "y", "n":
			msg += fmt.Sprintf(" (%q is a string in YAML 1.2)", n.Value)
		}
	}
	if t == reflect.TypeFor[Secret]() && n.Kind == yaml.ScalarNode {
		msg += " (write {value: ...}, {file: PATH} or {env: NAME})"
	}
	r.errorAt(n, path, "%s", msg)
	r.failed[path] = true
}

// want describes what a value of type t is written as.
func want(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return want(t.Elem())
	case reflect.Struct:
		return "a mapping"
	case reflect.Slice:
		return "a list"
	case reflect.String:
		return "a string"
	case reflect.Int:
		return "an integer"
	case reflect.Bool:
		return "true or false"
	}
	return t.String()
}

// describe says what node n is, for messages. It never quotes the value,
// which may be a secret.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.ShortTag() {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "null"
	case "!!timestamp":
		return "a timestamp"
	case "!!binary":
		return "binary data"
	}
	return "a value tagged " + n.ShortTag()
}

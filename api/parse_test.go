package api

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const valid = `apiVersion: braid/v1alpha1
kind: Router
metadata: {name: t}
spec:
  uplinks:
  - {name: a, interface: eth1, ipv4: {dhcp: {}}}
`

// parseErr parses src and returns its error text ("" when it parses).
func parseErr(t *testing.T, src string) string {
	t.Helper()
	_, err := Parse("t.yaml", []byte(src))
	if err == nil {
		return ""
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse error is %T, want *Errors: %v", err, err)
	}
	return err.Error()
}

func TestTooLarge(t *testing.T) {
	big := valid + "# " + strings.Repeat("x", MaxFileSize) + "\n"
	want := fmt.Sprintf("t.yaml: file is larger than 1 MiB (%d bytes); a spec is a small text file", len(big))
	if got := parseErr(t, big); got != want {
		t.Errorf("Parse(big) = %q, want %q", got, want)
	}
	// Exactly the limit is fine.
	atLimit := valid + "#" + strings.Repeat("x", MaxFileSize-len(valid)-2) + "\n"
	if len(atLimit) != MaxFileSize {
		t.Fatalf("atLimit is %d bytes", len(atLimit))
	}
	if got := parseErr(t, atLimit); got != "" {
		t.Errorf("Parse(1 MiB) = %q", got)
	}

	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := writeFile(path, big); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if want := fmt.Sprintf("%s: file is larger than 1 MiB (%d bytes); a spec is a small text file", path, len(big)); err == nil || err.Error() != want {
		t.Errorf("Load(big) = %v, want %s", err, want)
	}
}

// TestLoadStream checks Load's limit on a file whose size Stat does not
// tell.
func TestLoadStream(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no /dev/zero (CI=true: not skipping): %v", err)
		}
		t.Skip("no /dev/zero")
	}
	// An endless stream: Load stops reading past the limit (were it not
	// to, the test would never end).
	work := allocated(func() {
		_, err := Load("/dev/zero")
		if err == nil || !strings.Contains(err.Error(), "larger than 1 MiB") {
			t.Errorf("Load(/dev/zero) = %v", err)
		}
	})
	if work > 16<<20 {
		t.Errorf("Load(/dev/zero) allocated %d MiB", work>>20)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ok.yaml")
	if err := writeFile(path, valid); err != nil {
		t.Fatal(err)
	}
	d, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != KindRouter || d.Metadata.Name != "t" || d.Router == nil || d.Peer != nil || d.Router.Uplinks[0].Name != "a" {
		t.Errorf("Load = %+v", d)
	}
}

// TestAliasBombs checks that alias expansion is bounded and quick, however
// the aliases are arranged.
func TestAliasBombs(t *testing.T) {
	var laughs strings.Builder
	laughs.WriteString("apiVersion: braid/v1alpha1\nkind: Router\nmetadata: {name: t}\n")
	laughs.WriteString("x: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&laughs, "x%d: &a%d [", i, i)
		for j := range 9 {
			if j > 0 {
				laughs.WriteString(", ")
			}
			fmt.Fprintf(&laughs, "*a%d", i-1)
		}
		laughs.WriteString("]\n")
	}
	classic := laughs.String()

	// The classic bomb, aimed at every list in the spec.
	aimed := classic + `spec:
  management: {allow: *a39, probes: *a39}
  uplinks: *a39
  routes: *a39
`
	// Amplification through struct fields: each uplink refers to the last,
	// which holds a list of many probes.
	var chain strings.Builder
	chain.WriteString("apiVersion: braid/v1alpha1\nkind: Router\nmetadata: {name: t}\nspec:\n  uplinks:\n")
	chain.WriteString("  - &u {name: a, interface: eth1, ipv4: {dhcp: {}}, health: {probes: [")
	for i := range 1000 {
		if i > 0 {
			chain.WriteString(", ")
		}
		chain.WriteString("{icmp: 192.0.2.1}")
	}
	chain.WriteString("]}}\n")
	for range 10000 {
		chain.WriteString("  - *u\n")
	}
	// Keys that are aliases to big nodes.
	keys := classic + "spec: {*a39 : 1}\n"

	for name, src := range map[string]string{"classic": classic, "aimed": aimed, "chain": chain.String(), "keys": keys} {
		var got string
		// Bounded work, whatever the machine's load: a bomb the guard
		// missed would allocate gigabytes.
		if work := allocated(func() { got = parseErr(t, src) }); work > maxParseAlloc {
			t.Errorf("%s: Parse allocated %d MiB", name, work>>20)
		}
		if got == "" {
			t.Errorf("%s: Parse succeeded", name)
		}
		if n := strings.Count(got, "\n") + 1; n > 100 {
			t.Errorf("%s: %d errors", name, n)
		}
	}
	if got := parseErr(t, chain.String()); got != "t.yaml: aliases expand to more than 10000 nodes; write the values out or use fewer aliases" {
		t.Errorf("chain: %s", got)
	}
}

func TestDeepNesting(t *testing.T) {
	for _, src := range []string{
		valid + "x: " + strings.Repeat("[", 100000) + "\n",
		valid + "x: " + strings.Repeat("{a: ", 100000) + "\n",
		strings.Repeat("- ", 50000) + "x\n",
	} {
		work := allocated(func() {
			if got := parseErr(t, src); got == "" {
				t.Errorf("Parse succeeded on deep nesting")
			}
		})
		if work > maxParseAlloc {
			t.Errorf("Parse allocated %d MiB", work>>20)
		}
	}
}

func TestEncodings(t *testing.T) {
	if got := parseErr(t, "\ufeff"+valid); got != "" {
		t.Errorf("UTF-8 BOM: %s", got)
	}
	crlf := strings.ReplaceAll(valid, "\n", "\r\n") + "x: 1\r\n"
	if got := parseErr(t, crlf); got != `t.yaml:7:1: unknown field "x" (fields here: apiVersion, kind, metadata, spec)` {
		t.Errorf("CRLF: %s", got)
	}
	// UTF-16 has NUL bytes: binary.
	if got := parseErr(t, "\xff\xfea\x00:\x00 \x001\x00\n\x00"); !strings.Contains(got, "binary file") {
		t.Errorf("UTF-16: %s", got)
	}
	// Non-ASCII before an error: columns count characters, not bytes.
	if got := parseErr(t, valid+"# é\nmétadata: 1\n"); got != `t.yaml:8:1: unknown field "métadata"; did you mean "metadata"?` {
		t.Errorf("non-ASCII: %s", got)
	}
	if got := parseErr(t, "a: é\xff\n"); got != "t.yaml:1:5: invalid UTF-8; a spec is UTF-8 text" {
		t.Errorf("invalid UTF-8: %s", got)
	}
}

// TestAllErrorsAtOnce checks that decoding, tag and cross-field problems
// are reported together, and that a value that failed to decode does not
// cause more errors.
func TestAllErrorsAtOnce(t *testing.T) {
	got := parseErr(t, `apiVersion: braid/v1alpha1
kind: Router
metadata: {name: t}
spec:
  uplinks:
  - {name: a, interface: eth1, ipv4: {dhcp: {}}, prority: 1}
  - {name: b, interface: eth1, ipv4: "dhcp"}
  - {name: c, interface: eth3, ipv4: {dhcp: {}}, mtu: "big"}
  routes: [{to: [10.0.0.1/8], via: d}]
`)
	want := `t.yaml:6:50: spec.uplinks[0]: unknown field "prority"; did you mean "priority"?
t.yaml:7:26: spec.uplinks[1].interface: interface "eth1" is already used by spec.uplinks[0]
t.yaml:7:38: spec.uplinks[1].ipv4: want a mapping, got a string
t.yaml:8:55: spec.uplinks[2].mtu: want an integer, got a string
t.yaml:9:18: spec.routes[0].to[0]: "10.0.0.1/8" has host bits set; did you mean "10.0.0.0/8"?
t.yaml:9:36: spec.routes[0].via: unknown uplink "d" (uplinks: a, b, c)`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestKinds(t *testing.T) {
	d, err := Parse("p.yaml", []byte("apiVersion: braid/v1alpha1\nkind: Peer\nmetadata: {name: p}\nspec: {listen: \"0.0.0.0:65101\", key: {env: K}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Peer == nil || d.Router != nil || d.Peer.Cipher != DefaultCipher {
		t.Errorf("peer document = %+v", d)
	}
	if got := parseErr(t, "apiVersion: braid/v1alpha1\nkind: Peer\nmetadata: {name: p}\n"); got != `t.yaml:1:1: missing required field "spec"` {
		t.Errorf("peer without spec: %s", got)
	}
	if got := parseErr(t, "apiVersion: braid/v1alpha1\nkind: [Router]\nmetadata: {name: p}\nspec: {}\n"); got != "t.yaml:2:7: kind: want a string, got a list" {
		t.Errorf("kind list: %s", got)
	}
}

func TestTooManyErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: braid/v1alpha1\nkind: Router\nmetadata: {name: t}\nspec:\n  uplinks:\n")
	for i := range 200 {
		fmt.Fprintf(&b, "  - {name: u%d, interface: eth%d, ipv4: {dhcp: {}}, prority: 1}\n", i, i)
	}
	_, err := Parse("t.yaml", []byte(b.String()))
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse = %v", err)
	}
	if len(errs.List) != MaxErrors+1 {
		t.Fatalf("%d errors, want %d", len(errs.List), MaxErrors+1)
	}
	// 311 errors: 200 unknown fields, and 111 default tables past 7189.
	if first, last := errs.List[0].Error(), errs.List[MaxErrors].Error(); first != `t.yaml:6:51: spec.uplinks[0]: unknown field "prority"; did you mean "priority"?` ||
		last != "t.yaml: too many errors (211 more not shown)" {
		t.Errorf("first: %s\nlast: %s", first, last)
	}
}

// TestDefaultTablesRunOut checks that the 90th uplink without a table,
// whose default would be the first of braid's own tables, is told to set
// one, and that the 89th is not.
func TestDefaultTablesRunOut(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: braid/v1alpha1\nkind: Router\nmetadata: {name: t}\nspec:\n  uplinks:\n")
	for i := range 90 {
		fmt.Fprintf(&b, "  - {name: u%d, interface: eth%d, ipv4: {dhcp: {}}}\n", i, i)
	}
	want := "t.yaml:95:5: spec.uplinks[89].table: default table 7190 (7101 + the uplink's index) is past braid's uplink tables 7101..7189; set table"
	if got := parseErr(t, b.String()); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// maxParseAlloc bounds what one Parse of a hostile spec may allocate: a
// few times what the largest legitimate one (1 MiB of YAML) needs.
const maxParseAlloc = 512 << 20

// allocated runs fn and returns the bytes the process allocated
// meanwhile: a measure of work that does not depend on how busy the
// machine is, unlike a wall-clock limit.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

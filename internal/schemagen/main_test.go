package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsUpToDate runs the generator again on api and checks it changes
// nothing: a doc comment edited without `go generate ./api` fails here.
func TestDocsUpToDate(t *testing.T) {
	got, err := docsSource("../../api")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../../api/docs_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("api/docs_gen.go is stale: run go generate ./api")
	}
}

// TestDocs checks what the generator reads from a small package: type and
// field comments, by Go name, as plain text, and nothing for unexported
// or undocumented names.
func TestDocs(t *testing.T) {
	dir := t.TempDir()
	src := `package api

// Uplink is one Internet access link.
type Uplink struct {
	// MTU of the link; see [Uplink].
	//
	// 0 leaves it as it is.
	MTU int
	Name string
	// hidden is not exported.
	hidden int
}

// notExported is not listed.
type notExported struct {
	// A is not listed.
	A int
}
`
	if err := os.WriteFile(filepath.Join(dir, "types.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := docs(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Uplink":     "Uplink is one Internet access link.",
		"Uplink.MTU": "MTU of the link; see Uplink.\n\n0 leaves it as it is.",
	}
	if len(got) != len(want) {
		t.Errorf("got %d docs, want %d: %q", len(got), len(want), got)
	}
	for k, w := range want {
		if g := strings.TrimSpace(got[k]); g != w {
			t.Errorf("%s: got %q, want %q", k, g, w)
		}
	}
}

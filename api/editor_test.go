package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/textproto"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
)

// TestEditor opens the example specs in the language server editors run
// for YAML (yaml-language-server, as VS Code's YAML extension does), which
// finds the schema through each spec's modeline: a spec with two mistakes
// gets a diagnostic on each of their lines, and every example gets none.
func TestEditor(t *testing.T) {
	bin := nstest.RequireBinary(t, "yaml-language-server")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ls := startLanguageServer(t, ctx, bin)

	// A spec with mistakes, opened as if it were in specs/, so that its
	// modeline's relative path resolves as the examples' do. It is not
	// written anywhere: the editor sends its text.
	bad := `# yaml-language-server: $schema=../api/schema.json
apiVersion: braid/v1alpha1
kind: Router
metadata: {name: home}
spec:
  uplinks:
  - name: fibre
    interface: eth1
    prority: 10
    mptcp: {mode: bakup}
`
	diags := ls.open(t, "../specs/editor-test.yaml", bad, true)
	t.Logf("diagnostics: %+v", diags)
	lines := map[int]bool{}
	for _, d := range diags {
		lines[d.Range.Start.Line+1] = true
	}
	for _, want := range []int{9, 10} {
		if !lines[want] {
			t.Errorf("no diagnostic on line %d (prority, bakup); got %+v", want, diags)
		}
	}

	// Now that the schema is loaded, each example must be clean.
	for _, f := range specFiles(t) {
		text := readText(t, f)
		if d := ls.open(t, f, text, false); len(d) > 0 {
			t.Errorf("%s: the editor flags %+v", f, d)
		}
	}
}

// diagnostic is an LSP diagnostic, the fields the test reads.
type diagnostic struct {
	Range struct {
		Start struct{ Line, Character int }
	}
	Message string
}

// languageServer is a language server process spoken to over stdio.
type languageServer struct {
	in    io.Writer
	mu    sync.Mutex
	diags chan published
}

type published struct {
	URI         string
	Diagnostics []diagnostic
}

func startLanguageServer(t *testing.T, ctx context.Context, bin string) *languageServer {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "--stdio")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("yaml-language-server's stderr:\n%s", stderr.String())
		}
	})
	ls := &languageServer{in: in, diags: make(chan published, 64)}
	responses := make(chan json.RawMessage, 1)
	go ls.read(bufio.NewReader(out), responses)

	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	ls.send(t, map[string]any{"id": 1, "method": "initialize", "params": map[string]any{
		"processId": nil, "rootUri": fileURI(root), "capabilities": map[string]any{},
	}})
	select {
	case <-responses:
	case <-ctx.Done():
		t.Fatal("no answer to initialize")
	}
	ls.send(t, map[string]any{"method": "initialized", "params": map[string]any{}})
	ls.send(t, map[string]any{"method": "workspace/didChangeConfiguration", "params": map[string]any{
		"settings": map[string]any{"yaml": map[string]any{
			"validate": true, "schemaStore": map[string]any{"enable": false},
		}},
	}})
	return ls
}

// open opens file (its name relative to this directory) with text, and
// returns the diagnostics the server publishes for it: the first non-empty
// ones when wantSome, else the first ones.
func (ls *languageServer) open(t *testing.T, file, text string, wantSome bool) []diagnostic {
	t.Helper()
	abs, err := filepath.Abs(file)
	if err != nil {
		t.Fatal(err)
	}
	uri := fileURI(abs)
	ls.send(t, map[string]any{"method": "textDocument/didOpen", "params": map[string]any{
		"textDocument": map[string]any{"uri": uri, "languageId": "yaml", "version": 1, "text": text},
	}})
	deadline := time.After(time.Minute)
	for {
		select {
		case p := <-ls.diags:
			if p.URI != uri || wantSome && len(p.Diagnostics) == 0 {
				continue
			}
			return p.Diagnostics
		case <-deadline:
			t.Fatalf("no diagnostics for %s within a minute", file)
		}
	}
}

// read dispatches the server's messages: responses, diagnostics, and
// requests (answered with null: the test offers no capabilities).
func (ls *languageServer) read(r *bufio.Reader, responses chan<- json.RawMessage) {
	tr := textproto.NewReader(r)
	for {
		h, err := tr.ReadMIMEHeader()
		if err != nil {
			return
		}
		n, err := strconv.Atoi(h.Get("Content-Length"))
		if err != nil {
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			Result json.RawMessage `json:"result"`
		}
		if json.Unmarshal(body, &m) != nil {
			continue
		}
		switch {
		case m.Method == "textDocument/publishDiagnostics":
			var p published
			if json.Unmarshal(m.Params, &p) == nil {
				ls.diags <- p
			}
		case m.Method != "" && m.ID != nil:
			ls.write(map[string]any{"id": m.ID, "result": nil})
		case m.Method == "" && m.ID != nil:
			select {
			case responses <- m.Result:
			default:
			}
		}
	}
}

func (ls *languageServer) send(t *testing.T, msg map[string]any) {
	t.Helper()
	if err := ls.write(msg); err != nil {
		t.Fatal(err)
	}
}

func (ls *languageServer) write(msg map[string]any) error {
	msg["jsonrpc"] = "2.0"
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	_, err = fmt.Fprintf(ls.in, "Content-Length: %d\r\n\r\n%s", len(b), b)
	return err
}

func fileURI(abs string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
}

func readText(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

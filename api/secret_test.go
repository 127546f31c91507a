package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"
)

const leak = "hunter2-do-not-print"

func TestSecretString(t *testing.T) {
	for _, tc := range []struct {
		s    *Secret
		want string
	}{
		{nil, "(none)"},
		{&Secret{}, "(none)"},
		{&Secret{Value: leak}, "(sensitive)"},
		{&Secret{File: "/etc/braid/k"}, "file:/etc/braid/k"},
		{&Secret{Env: "KEY"}, "env:KEY"},
		{&Secret{Value: leak, File: "/f"}, "(sensitive)"},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.s, got, tc.want)
		}
	}
}

// TestSecretNeverLeaks prints a secret, alone and inside other values,
// every way the program might, and checks its value never shows.
func TestSecretNeverLeaks(t *testing.T) {
	s := Secret{Value: leak}
	holder := struct {
		V Secret
		P *Secret
		L []Secret
		M map[string]Secret
	}{s, &s, []Secret{s}, map[string]Secret{"k": s}}
	peer := &AggregationPeer{Address: "vps:1", Key: &s}
	doc := &Document{APIVersion: APIVersion, Kind: KindRouter, Metadata: Metadata{Name: "x"},
		Router: &RouterSpec{Aggregation: &Aggregation{Peer: peer}}}
	var outputs []string
	for _, v := range []any{s, &s, holder, &holder, peer, *peer, doc, *doc} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%10.3s"} {
			outputs = append(outputs, fmt.Sprintf(verb, v))
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%T): %v", v, err)
		}
		outputs = append(outputs, string(b))
		y, err := yaml.Marshal(v)
		if err != nil {
			t.Fatalf("yaml.Marshal(%T): %v", v, err)
		}
		outputs = append(outputs, string(y))
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "v", v, "s", s, "p", &s)
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "v", v, "s", s, "p", &s)
		outputs = append(outputs, buf.String())
	}
	eff, err := Effective(doc)
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, string(eff))
	for _, o := range outputs {
		if strings.Contains(o, leak) || strings.Contains(o, fmt.Sprintf("%x", leak)) {
			t.Errorf("secret leaked: %s", o)
		}
	}
	if !strings.Contains(string(eff), "key: {value: (sensitive)}") {
		t.Errorf("effective spec does not show the redacted key:\n%s", eff)
	}
}

func TestSecretJSONAndYAML(t *testing.T) {
	for _, tc := range []struct {
		s        Secret
		json     string
		yamlText string
	}{
		{Secret{Value: leak}, `{"value":"(sensitive)"}`, "{value: (sensitive)}\n"},
		{Secret{File: "/k"}, `{"file":"/k"}`, "{file: /k}\n"},
		{Secret{Env: "K"}, `{"env":"K"}`, "{env: K}\n"},
	} {
		j, err := json.Marshal(tc.s)
		if err != nil || string(j) != tc.json {
			t.Errorf("json.Marshal(%v) = %s, %v; want %s", tc.s, j, err, tc.json)
		}
		y, err := yaml.Marshal(tc.s)
		if err != nil || string(y) != tc.yamlText {
			t.Errorf("yaml.Marshal(%v) = %q, %v; want %q", tc.s, y, err, tc.yamlText)
		}
	}
}

func TestSecretResolve(t *testing.T) {
	env := map[string]string{"KEY": "from-env", "EMPTY": ""}
	files := map[string]string{
		"/k":      "from-file\n",
		"/crlf":   "from-file\r\n",
		"/two":    "a\n\n",
		"/bare":   "no-newline",
		"/empty":  "\n",
		"/spaces": " s \n",
	}
	getenv := func(k string) string { return env[k] }
	readFile := func(p string) ([]byte, error) {
		if c, ok := files[p]; ok {
			return []byte(c), nil
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	for _, tc := range []struct {
		s       *Secret
		want    string
		wantErr string
	}{
		{s: &Secret{Value: "v"}, want: "v"},
		{s: &Secret{File: "/k"}, want: "from-file"},
		{s: &Secret{File: "/crlf"}, want: "from-file"},
		{s: &Secret{File: "/two"}, want: "a\n"},
		{s: &Secret{File: "/bare"}, want: "no-newline"},
		{s: &Secret{File: "/spaces"}, want: " s "},
		{s: &Secret{Env: "KEY"}, want: "from-env"},
		{s: &Secret{File: "/empty"}, wantErr: "secret file /empty is empty"},
		{s: &Secret{File: "/missing"}, wantErr: "secret file /missing: open /missing: file does not exist"},
		{s: &Secret{Env: "EMPTY"}, wantErr: "secret: environment variable EMPTY is not set or empty"},
		{s: &Secret{Env: "UNSET"}, wantErr: "secret: environment variable UNSET is not set or empty"},
		{s: &Secret{}, wantErr: "secret: none of value, file or env is set"},
		{s: nil, wantErr: "secret: none of value, file or env is set"},
		{s: &Secret{Value: leak, Env: "KEY"}, wantErr: "secret (sensitive): more than one of value, file or env is set"},
	} {
		got, err := tc.s.Resolve(getenv, readFile)
		switch {
		case tc.wantErr != "":
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("Resolve(%v) = %q, %v; want error %q", tc.s, got, err, tc.wantErr)
			}
		case err != nil || got != tc.want:
			t.Errorf("Resolve(%v) = %q, %v; want %q", tc.s, got, err, tc.want)
		}
	}
	_, err := (&Secret{File: "/missing"}).Resolve(getenv, readFile)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Resolve error %v does not wrap fs.ErrNotExist", err)
	}
}

// TestSecretResolveDefaults resolves with the real environment and file
// system when no functions are given.
func TestSecretResolveDefaults(t *testing.T) {
	t.Setenv("BRAID_TEST_SECRET", "s")
	if got, err := (&Secret{Env: "BRAID_TEST_SECRET"}).Resolve(nil, nil); err != nil || got != "s" {
		t.Errorf("Resolve(env) = %q, %v", got, err)
	}
	path := t.TempDir() + "/k"
	if err := writeFile(path, "file-secret\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := (&Secret{File: path}).Resolve(nil, nil); err != nil || got != "file-secret" {
		t.Errorf("Resolve(file) = %q, %v", got, err)
	}
}

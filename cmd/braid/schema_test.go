package main

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// TestSchemaCommand checks that braid schema prints the committed
// api/schema.json, byte for byte.
func TestSchemaCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(braidBin, "schema")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("braid schema: %v\n%s", err, stderr.String())
	}
	want, err := os.ReadFile("../../api/schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stdout.Bytes(), want) {
		t.Fatalf("braid schema prints %d bytes, not api/schema.json's %d (run go generate ./api)", stdout.Len(), len(want))
	}
}

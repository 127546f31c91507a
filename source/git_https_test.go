//go:build !braid_nogit

package source

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/gittest"
	"github.com/braid-router/braid/internal/nstest"
)

func TestGitHTTPS(t *testing.T) {
	r := newTestRepo(t, "1")
	ca := gittest.NewCA(t, "braid test CA")
	const token = "s3cret-token-4f9a"
	backend := gittest.HTTPBackend(t)
	s := gittest.StartHTTPS(t, gittest.Listen(t, ""), backend, filepath.Dir(r.Dir), ca.ServerCert(t), token)
	emptyPath(t)

	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.PEM")
	write(t, caFile, ca.PEM)
	tokenFile := filepath.Join(dir, "token")
	write(t, tokenFile, []byte(token+"\n"))
	url := s.URL + "/repo"
	var logs nstest.SyncBuffer
	opts := GitOptions{URL: url, Path: "specs/home.yaml", Interval: 200 * time.Millisecond,
		Dir: filepath.Join(dir, "cache"), TokenFile: tokenFile, CAFile: caFile, Log: slogTo(&logs)}
	g := newGit(t, opts)

	checkRev(t, load(t, g), url, r.Head(), spec("1"))
	if s.Authed.Load() == 0 || s.Denied.Load() != 0 {
		t.Errorf("server saw %d requests with the token and %d without", s.Authed.Load(), s.Denied.Load())
	}
	w := watch(t, g)
	w.expect(t, 0, "no new commit")
	c2 := r.Commit(map[string][]byte{"specs/home.yaml": spec("2")})
	w.expect(t, 1, "new commit")
	checkRev(t, load(t, g), url, c2, spec("2"))

	ctx := context.Background()
	var errs []error
	// A wrong token: refused by the server, and the error says so
	// without showing the token.
	bad := filepath.Join(dir, "bad-token")
	write(t, bad, []byte("wrong-token-77\n"))
	opts.TokenFile, opts.Dir = bad, ""
	_, err := newGit(t, opts).Load(ctx)
	if err == nil || !strings.Contains(err.Error(), "authentication required") || !strings.Contains(err.Error(), url) {
		t.Errorf("wrong token: %v, want an authentication error naming the URL", err)
	}
	errs = append(errs, err)
	// No token at all.
	opts.TokenFile = ""
	_, err = newGit(t, opts).Load(ctx)
	if err == nil || !strings.Contains(err.Error(), "authentication required") {
		t.Errorf("no token: %v", err)
	}
	errs = append(errs, err)

	// The same server, trusted without the CA file: refused (the system
	// roots do not have the test CA).
	opts.TokenFile, opts.CAFile = tokenFile, ""
	_, err = newGit(t, opts).Load(ctx)
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Errorf("no CA file: %v", err)
	}
	errs = append(errs, err)

	// A server whose certificate comes from another CA: refused, and the
	// token never sent.
	other := gittest.StartHTTPS(t, gittest.Listen(t, ""), backend, filepath.Dir(r.Dir), gittest.NewCA(t, "another CA").ServerCert(t), token)
	opts.URL, opts.CAFile = other.URL+"/repo", caFile
	_, err = newGit(t, opts).Load(ctx)
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") || !strings.Contains(err.Error(), other.URL) {
		t.Errorf("another CA: %v, want a certificate error naming the URL", err)
	}
	errs = append(errs, err)
	if n := other.Authed.Load() + other.Denied.Load(); n != 0 {
		t.Errorf("the server with another CA's certificate got %d requests", n)
	}

	for _, err := range errs {
		t.Logf("refused as expected: %v", err)
		if err != nil && strings.Contains(err.Error(), token) {
			t.Errorf("an error shows the token: %v", err)
		}
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("the log shows the token:\n%s", logs.String())
	}
}

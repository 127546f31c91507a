//go:build !braid_nogit

package source

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/gittest"
	"github.com/braid-router/braid/internal/nstest"
)

func TestGitSSH(t *testing.T) {
	keyDir := t.TempDir()
	clientKey := filepath.Join(keyDir, "id_ed25519")
	s := gittest.StartSSHD(t, gittest.Listen(t, ""), gittest.SSHKey(t, clientKey))
	r := newTestRepo(t, "1")
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	emptyPath(t) // braid's side runs nothing
	url := fmt.Sprintf("ssh://%s@%s%s", me.Username, s.Addr, r.Dir)
	known := gittest.KnownHostsFile(t, s.Addr, s.HostKey)
	cache := filepath.Join(t.TempDir(), "git")
	var logs nstest.SyncBuffer
	opts := GitOptions{URL: url, Path: "specs/home.yaml", Interval: 200 * time.Millisecond, Dir: cache,
		SSHKeyFile: clientKey, KnownHostsFile: known, Log: slogTo(&logs)}
	g := newGit(t, opts)
	if want := "git " + url + " ref main path specs/home.yaml"; g.String() != want {
		t.Errorf("String() = %q, want %q", g.String(), want)
	}

	checkRev(t, load(t, g), url, r.Head(), spec("1"))
	// The fetch was shallow: the cache records the shallow boundary.
	if entries, _ := os.ReadDir(cache); len(entries) != 1 {
		t.Fatalf("cache: %v", entries)
	} else if _, err := os.Stat(filepath.Join(cache, entries[0].Name(), "shallow")); err != nil {
		t.Errorf("no shallow file in the cache: %v", err)
	}

	w := watch(t, g)
	w.expect(t, 0, "no new commit")
	c2 := r.Commit(map[string][]byte{"specs/home.yaml": spec("2")})
	w.expect(t, 1, "new commit")
	checkRev(t, load(t, g), url, c2, spec("2"))
	// A second shallow fetch on top of the first.
	c3 := r.Commit(map[string][]byte{"specs/home.yaml": spec("3")})
	checkRev(t, load(t, g), url, c3, spec("3"))

	ctx := context.Background()
	// Another host key for the address: refused, saying why.
	other := filepath.Join(t.TempDir(), "other_host_key")
	opts.KnownHostsFile = gittest.KnownHostsFile(t, s.Addr, gittest.SSHKey(t, other))
	opts.Dir = ""
	_, err = newGit(t, opts).Load(ctx)
	if err == nil || !strings.Contains(err.Error(), "key mismatch") || !strings.Contains(err.Error(), url) {
		t.Errorf("wrong host key: %v, want a key mismatch naming the URL", err)
	}
	t.Logf("refused as expected: %v", err)
	// A known_hosts without the server: refused at NewGit.
	opts.KnownHostsFile = gittest.KnownHostsFile(t, "192.0.2.1:22", s.HostKey)
	if _, err := NewGit(opts); err == nil || !strings.Contains(err.Error(), "no key for "+s.Addr) {
		t.Errorf("known_hosts without the server: %v", err)
	}
	// A client key the server does not know: refused.
	opts.KnownHostsFile = known
	opts.SSHKeyFile = filepath.Join(keyDir, "stranger")
	gittest.SSHKey(t, opts.SSHKeyFile)
	_, err = newGit(t, opts).Load(ctx)
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("unauthorized client key: %v", err)
	}
	t.Logf("refused as expected: %v", err)
	if l := logs.String(); l != "" {
		t.Logf("logs: %s", l)
	}
}

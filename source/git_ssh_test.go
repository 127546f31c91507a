package source

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshKey makes an ed25519 key, writes its private half in OpenSSH format
// to path, and returns its public half.
func sshKey(t *testing.T, path string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sshPub
}

// sshServer is Debian's sshd, run by the test in inetd mode (sshd -i) for
// each connection to a loopback listener, with its own host key, one
// authorized key, and git-upload-pack run by the login shell.
type sshServer struct {
	addr    string
	hostKey ssh.PublicKey
	log     syncBuffer
}

func startSSHD(t *testing.T, authorized ssh.PublicKey) *sshServer {
	t.Helper()
	nstest.RequireRoot(t)
	sshd := requireBinary(t, "/usr/sbin/sshd")
	requireBinary(t, "git-upload-pack") // run by sshd's session, not by braid
	// sshd's privilege separation wants this directory; Debian's service
	// makes it at boot, and the test runs sshd without the service.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &sshServer{hostKey: sshKey(t, filepath.Join(dir, "host_key"))}
	authFile := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authFile, ssh.MarshalAuthorizedKey(authorized), 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "sshd_config")
	cfg := fmt.Sprintf(`HostKey %s
AuthorizedKeysFile %s
PidFile none
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
LogLevel VERBOSE
`, filepath.Join(dir, "host_key"), authFile)
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sshd, "-t", "-f", config).CombinedOutput(); err != nil {
		t.Fatalf("sshd -t: %v\n%s", err, out)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	var wg sync.WaitGroup
	var procs sync.Map
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f, err := c.(*net.TCPConn).File()
			c.Close()
			if err != nil {
				t.Error(err)
				return
			}
			cmd := exec.Command(sshd, "-i", "-e", "-f", config)
			cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
			cmd.Stdin, cmd.Stdout = f, f
			cmd.Stderr = &s.log
			err = cmd.Start()
			f.Close()
			if err != nil {
				t.Error(err)
				return
			}
			procs.Store(cmd, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd.Wait()
				procs.Delete(cmd)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		procs.Range(func(k, _ any) bool {
			k.(*exec.Cmd).Process.Kill()
			return true
		})
		wg.Wait()
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.log.String())
		}
	})
	return s
}

// knownHostsFile writes a known_hosts file that gives key for addr.
func knownHostsFile(t *testing.T, addr string, key ssh.PublicKey) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n"
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestGitSSH(t *testing.T) {
	keyDir := t.TempDir()
	clientKey := filepath.Join(keyDir, "id_ed25519")
	s := startSSHD(t, sshKey(t, clientKey))
	r := newTestRepo(t, "1")
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	emptyPath(t) // braid's side runs nothing
	url := fmt.Sprintf("ssh://%s@%s%s", me.Username, s.addr, r.dir)
	known := knownHostsFile(t, s.addr, s.hostKey)
	cache := filepath.Join(t.TempDir(), "git")
	var logs syncBuffer
	opts := GitOptions{URL: url, Path: "specs/home.yaml", Interval: 200 * time.Millisecond, Dir: cache,
		SSHKeyFile: clientKey, KnownHostsFile: known, Log: slogTo(&logs)}
	g := newGit(t, opts)
	if want := "git " + url + " ref main path specs/home.yaml"; g.String() != want {
		t.Errorf("String() = %q, want %q", g.String(), want)
	}

	head, _ := r.repo.Head()
	checkRev(t, load(t, g), url, head.Hash(), spec("1"))
	// The fetch was shallow: the cache records the shallow boundary.
	if entries, _ := os.ReadDir(cache); len(entries) != 1 {
		t.Fatalf("cache: %v", entries)
	} else if _, err := os.Stat(filepath.Join(cache, entries[0].Name(), "shallow")); err != nil {
		t.Errorf("no shallow file in the cache: %v", err)
	}

	w := watch(t, g)
	w.expect(t, 0, "no new commit")
	c2 := r.commit(map[string][]byte{"specs/home.yaml": spec("2")})
	w.expect(t, 1, "new commit")
	checkRev(t, load(t, g), url, c2, spec("2"))
	// A second shallow fetch on top of the first.
	c3 := r.commit(map[string][]byte{"specs/home.yaml": spec("3")})
	checkRev(t, load(t, g), url, c3, spec("3"))

	ctx := context.Background()
	// Another host key for the address: refused, saying why.
	other := filepath.Join(t.TempDir(), "other_host_key")
	opts.KnownHostsFile = knownHostsFile(t, s.addr, sshKey(t, other))
	opts.Dir = ""
	_, err = newGit(t, opts).Load(ctx)
	if err == nil || !strings.Contains(err.Error(), "key mismatch") || !strings.Contains(err.Error(), url) {
		t.Errorf("wrong host key: %v, want a key mismatch naming the URL", err)
	}
	t.Logf("refused as expected: %v", err)
	// A known_hosts without the server: refused at NewGit.
	opts.KnownHostsFile = knownHostsFile(t, "192.0.2.1:22", s.hostKey)
	if _, err := NewGit(opts); err == nil || !strings.Contains(err.Error(), "no key for "+s.addr) {
		t.Errorf("known_hosts without the server: %v", err)
	}
	// A client key the server does not know: refused.
	opts.KnownHostsFile = known
	opts.SSHKeyFile = filepath.Join(keyDir, "stranger")
	sshKey(t, opts.SSHKeyFile)
	_, err = newGit(t, opts).Load(ctx)
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("unauthorized client key: %v", err)
	}
	t.Logf("refused as expected: %v", err)
	if l := logs.String(); l != "" {
		t.Logf("logs: %s", l)
	}
}

package gittest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/braid-router/braid/internal/nstest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHKey makes an ed25519 key, writes its private half in OpenSSH format
// to path, and returns its public half.
func SSHKey(t testing.TB, path string) ssh.PublicKey {
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

// SSHServer is Debian's sshd, run by the test in inetd mode (sshd -i) for
// each connection to its listener, with its own host key, one authorized
// key, and git-upload-pack run by the login shell.
type SSHServer struct {
	// Addr is the listener's address, HOST:PORT.
	Addr    string
	HostKey ssh.PublicKey
}

// StartSSHD serves ssh on ln until the test ends, for a client holding the
// private half of authorized. sshd's log is shown if the test fails. It
// needs root (sshd's privilege separation) and, on the server's side,
// sshd and git-upload-pack.
func StartSSHD(t testing.TB, ln net.Listener, authorized ssh.PublicKey) *SSHServer {
	t.Helper()
	nstest.RequireRoot(t)
	sshd := RequireBinary(t, "/usr/sbin/sshd")
	RequireBinary(t, "git-upload-pack") // run by sshd's session, not by the client
	// sshd's privilege separation wants this directory; Debian's service
	// makes it at boot, and the test runs sshd without the service.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &SSHServer{Addr: ln.Addr().String(), HostKey: SSHKey(t, filepath.Join(dir, "host_key"))}
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
	// Every sshd appends to one log file: each process writes whole lines
	// to its own descriptor of it.
	logPath := filepath.Join(dir, "sshd.log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}

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
			cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, logFile
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
		logFile.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("sshd log:\n%s", out)
		}
	})
	return s
}

// KnownHostsFile writes a known_hosts file that gives key for addr
// (HOST:PORT) and returns its path.
func KnownHostsFile(t testing.TB, addr string, key ssh.PublicKey) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n"
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

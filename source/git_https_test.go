package source

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testCA is a certificate authority made by the test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// serverCert issues a certificate for 127.0.0.1.
func (ca *testCA) serverCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// httpsServer serves the repositories under root with git http-backend
// (Debian's git, as CGI) over TLS with cert, and wants token as the
// password of HTTP basic auth.
type httpsServer struct {
	url    string
	authed atomic.Int64 // requests that carried the token
	denied atomic.Int64 // requests refused for want of it
}

// gitHTTPBackend returns the path of git http-backend.
func gitHTTPBackend(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(requireBinary(t, "git"), "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	return requireBinary(t, filepath.Join(strings.TrimSpace(string(out)), "git-http-backend"))
}

func startHTTPS(t *testing.T, backend, root string, cert tls.Certificate, token string) *httpsServer {
	t.Helper()
	s := &httpsServer{}
	cgiHandler := &cgi.Handler{
		Path: backend,
		Root: "/git",
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "PATH=/usr/bin:/bin"},
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pass, ok := r.BasicAuth(); !ok || pass != token {
			s.denied.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "token required", http.StatusUnauthorized)
			return
		}
		s.authed.Add(1)
		cgiHandler.ServeHTTP(w, r)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/git"
	return s
}

func TestGitHTTPS(t *testing.T) {
	r := newTestRepo(t, "1")
	ca := newTestCA(t, "braid test CA")
	const token = "s3cret-token-4f9a"
	backend := gitHTTPBackend(t)
	s := startHTTPS(t, backend, filepath.Dir(r.dir), ca.serverCert(t), token)
	emptyPath(t)

	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	write(t, caFile, ca.pem)
	tokenFile := filepath.Join(dir, "token")
	write(t, tokenFile, []byte(token+"\n"))
	url := s.url + "/repo"
	var logs syncBuffer
	opts := GitOptions{URL: url, Path: "specs/home.yaml", Interval: 200 * time.Millisecond,
		Dir: filepath.Join(dir, "cache"), TokenFile: tokenFile, CAFile: caFile, Log: slogTo(&logs)}
	g := newGit(t, opts)

	head, _ := r.repo.Head()
	checkRev(t, load(t, g), url, head.Hash(), spec("1"))
	if s.authed.Load() == 0 || s.denied.Load() != 0 {
		t.Errorf("server saw %d requests with the token and %d without", s.authed.Load(), s.denied.Load())
	}
	w := watch(t, g)
	w.expect(t, 0, "no new commit")
	c2 := r.commit(map[string][]byte{"specs/home.yaml": spec("2")})
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
	other := startHTTPS(t, backend, filepath.Dir(r.dir), newTestCA(t, "another CA").serverCert(t), token)
	opts.URL, opts.CAFile = other.url+"/repo", caFile
	_, err = newGit(t, opts).Load(ctx)
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") || !strings.Contains(err.Error(), other.url) {
		t.Errorf("another CA: %v, want a certificate error naming the URL", err)
	}
	errs = append(errs, err)
	if n := other.authed.Load() + other.denied.Load(); n != 0 {
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

package main

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/internal/nstest"
	"github.com/braid-router/braid/lab"
	"github.com/braid-router/braid/lab/labtest"
)

// TestLabUpRunsThePeer: `braid lab up`, the braid binary as its own
// helper, runs braid's peer in the peer namespace (a Multipath TCP
// listener on the peer's port, its key a file in the lab's run
// directory) beside iperf3 and the download service; `braid lab
// download` reads from the download service and says how much came.
func TestLabUpRunsThePeer(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireBinary(t, "iperf3")
	name := labtest.Config(t).Name
	braid := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, braidBin, args...).CombinedOutput()
		return string(out), err
	}
	if out, err := braid("lab", "up", "--name", name); err != nil {
		t.Fatalf("braid lab up: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := braid("lab", "down", "--name", name); err != nil {
			t.Errorf("braid lab down: %v\n%s", err, out)
		}
	})
	l, err := lab.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	if l.Braid != braidBin {
		t.Errorf("the lab's braid is %q, want the binary that built it, %s", l.Braid, braidBin)
	}
	// The peer converges and listens (braid run does not report to lab
	// up: wait for the listener).
	listening := func() bool {
		out, err := l.Run(context.Background(), lab.RolePeer, "ss", "-MlnH", "sport", "=", ":"+strconv.Itoa(lab.PeerPort))
		return err == nil && strings.Contains(out, "LISTEN")
	}
	if !waitFor(time.Minute, listening) {
		log, _ := exec.Command("cat", l.Dir+"/procs/"+lab.PeerProcess+".log").CombinedOutput()
		t.Fatalf("no MPTCP listener on the peer's port %d; the peer's log:\n%s", lab.PeerPort, log)
	}
	out, err := braid("lab", "status", "--name", name)
	for _, p := range []string{lab.PeerProcess, lab.IperfProcess, "whoami"} {
		if err != nil || !regexp.MustCompile(`(?m)^\s+`+p+`\s+\S+\s+\d+\s+running`).MatchString(out) {
			t.Errorf("lab status does not show %s running: %v\n%s", p, err, out)
		}
	}
	conf := readFile(t, l.Dir+"/procs/"+lab.PeerProcess+".conf")
	if !strings.Contains(conf, "kind: Peer") || !strings.Contains(conf, "key: {file: "+l.PeerKeyPath()+"}") {
		t.Errorf("the peer's spec does not read its key from %s:\n%s", l.PeerKeyPath(), conf)
	}

	server := "[" + lab.ServerV6 + "]:" + strconv.Itoa(lab.DownloadPort)
	out, err = braid("lab", "download", "--name", name, "--from", "isp2", "--size", "2M", "--every", "0", server)
	if err != nil || !regexp.MustCompile(`\s2\.0 MB  done`).MatchString(out) {
		t.Errorf("braid lab download --size 2M %s: %v\n%s", server, err, out)
	}
	if out, err := braid("lab", "download", "--name", name, "--from", "isp2", "--size", "lots", server); err == nil || !strings.Contains(out, "want a positive number") {
		t.Errorf("braid lab download --size lots: %v\n%s", err, out)
	}
}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{{"1", 1}, {"8M", 8e6}, {"20k", 20e3}, {"2G", 2e9}} {
		if got, err := parseSize(c.in); err != nil || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "0", "-1", "M", "1.5M", "8MB", "99999999999G"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/braid-router/braid/reconcile"
	"github.com/braid-router/braid/session"
)

// A session's detail of several lines prints its first after the
// session's address and the others under it, indented.
func TestWriteStatusDetailLines(t *testing.T) {
	st := reconcile.Status{Sessions: []session.Status{{
		Address: "session[proxy/aggregation]", State: session.Running, Since: time.Now(),
		Detail: "listening; mptcp: isp1 ok (2 subflows), isp2 joins fail\n! isp2: MPTCP subflows to the peer do not establish over isp2",
	}}}
	var b bytes.Buffer
	writeStatus(&b, "host", st)
	want := "  running     session[proxy/aggregation] for 0s: listening; mptcp: isp1 ok (2 subflows), isp2 joins fail\n" +
		"              ! isp2: MPTCP subflows to the peer do not establish over isp2\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("status:\n%s\nwant it to hold:\n%s", b.String(), want)
	}
}

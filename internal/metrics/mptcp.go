//go:build !braid_nometrics

package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// WatchSubflows makes braid_uplink_mptcp_subflows_ok report what verdicts
// returns at each scrape (the running proxy's; the last one watched when
// its session restarts). It may be called from any goroutine.
func (m *Metrics) WatchSubflows(verdicts func() []SubflowVerdict) {
	m.subflows.verdicts.Store(&verdicts)
}

var descSubflowsOK = prometheus.NewDesc("braid_uplink_mptcp_subflows_ok",
	"1 while the transparent proxy's MPTCP subflows to the aggregation peer establish over an uplink, 0 while it flags the uplink (its joins fail, or connections whose first subflow takes it fall back to plain TCP: an ISP that strips MPTCP); absent before a connection was looked at, and while plain TCP does not reach the peer over the uplink.",
	[]string{"uplink"}, nil)

// subflowsCollector reads the running proxy's verdicts at every scrape;
// it reports nothing before a proxy runs.
type subflowsCollector struct {
	verdicts atomic.Pointer[func() []SubflowVerdict]
}

func (c *subflowsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descSubflowsOK }

func (c *subflowsCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.verdicts.Load()
	if f == nil {
		return
	}
	seen := map[string]bool{}
	for _, v := range (*f)() {
		if !seen[v.Uplink] {
			seen[v.Uplink] = true
			ch <- prometheus.MustNewConstMetric(descSubflowsOK, prometheus.GaugeValue, boolValue(v.OK), v.Uplink)
		}
	}
}

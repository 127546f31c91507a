package metrics

// WatchSubflows makes braid_uplink_mptcp_subflows_ok report what verdicts
// returns at each scrape (the running proxy's; the last one watched when
// its session restarts). It may be called from any goroutine.
func (m *Metrics) WatchSubflows(verdicts func() []SubflowVerdict) {
	m.subflows.Store(&verdicts)
}

// subflowsFamilies reads the running proxy's verdicts; nothing before a
// proxy runs.
func (m *Metrics) subflowsFamilies() []*family {
	f := m.subflows.Load()
	if f == nil {
		return nil
	}
	ok := &family{name: "braid_uplink_mptcp_subflows_ok", kind: gauge,
		help: "1 while the transparent proxy's MPTCP subflows to the aggregation peer establish over an uplink, 0 while it flags the uplink (its joins fail, or connections whose first subflow takes it fall back to plain TCP: an ISP that strips MPTCP); absent before a connection was looked at, and while plain TCP does not reach the peer over the uplink."}
	seen := map[string]bool{}
	for _, v := range (*f)() {
		if !seen[v.Uplink] {
			seen[v.Uplink] = true
			ok.add(boolValue(v.OK), "uplink", v.Uplink)
		}
	}
	return []*family{ok}
}

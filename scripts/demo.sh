#!/usr/bin/env bash
# The demo: bring up the lab, show the plan for specs/lab.yaml in its box,
# apply it, and prove the box reaches the Internet server out of each
# uplink; then braid run with the uplinks tracked, braid's resolver on the
# LAN, a delegated prefix on the LAN, and a LAN download aggregated over both uplinks through braid's
# peer that survives an uplink failing. Usage: demo.sh BRAID_BINARY [LAB_NAME]
set -euo pipefail
braid=${1:?braid binary}
lab=${2:-braid}
box=$lab-box
spec=specs/lab.yaml

bold=$'\e[1m' green=$'\e[32m' red=$'\e[31m' off=$'\e[0m'
[ -t 1 ] || bold='' green='' red='' off=''
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$off"; }
failed=0
# expect DESCRIPTION WANT CMD...: run CMD, check its output starts with WANT.
expect() {
	local what=$1 want=$2 got
	shift 2
	got=$("$@" 2>&1) || true
	if [[ $got == "$want"* ]]; then
		printf '  %sok%s   %-58s server saw %s\n' "$green" "$off" "$what" "$got"
	else
		printf '  %sFAIL%s %-58s want %s, got: %s\n' "$red" "$off" "$what" "$want" "$got"
		failed=1
	fi
}
whoami() { "$braid" lab whoami --name "$lab" --timeout 3s "$@"; }

step "A fresh lab \"$lab\" (namespaces $lab-lan, $lab-box, $lab-isp1, $lab-isp2, $lab-inet, $lab-peer)"
"$braid" lab down --name "$lab" >/dev/null
"$braid" lab up --name "$lab"

step "The box before braid: its links are down and unaddressed"
ip -n "$box" -br addr show

step "braid --netns $box plan -f $spec"
rc=0
"$braid" --netns "$box" plan -f "$spec" || rc=$?
[ "$rc" -eq 2 ] || { echo "plan exited $rc, want 2 (changes)"; exit 1; }

step "braid --netns $box apply -f $spec"
"$braid" --netns "$box" apply -f "$spec"

step "braid --netns $box plan -f $spec (again: nothing to do)"
"$braid" --netns "$box" plan -f "$spec"

step "The box reaches the Internet server out of each uplink"
expect "from wan1's address, IPv4 (isp1)" "10.101.0.2:" whoami --from box --bind 10.101.0.2 198.51.100.80:7
expect "from wan2's address, IPv4 (isp2)" "10.102.0.2:" whoami --from box --bind 10.102.0.2 198.51.100.80:7
expect "from wan1's address, IPv6 (isp1)" "[2001:db8:101::2]:" whoami --from box --bind 2001:db8:101::2 '[2001:db8:ffff::80]:7'
expect "from wan2's address, IPv6 (isp2)" "[2001:db8:102::2]:" whoami --from box --bind 2001:db8:102::2 '[2001:db8:ffff::80]:7'
expect "default route: priority 10 wins (isp1)" "10.101.0.2:" whoami --from box 198.51.100.80:7
expect "routes: 198.51.100.128/25 via isp2" "10.102.0.2:" whoami --from box 198.51.100.200:7
expect "routes: 2001:db8:ffff:1::/64 via isp2" "[2001:db8:102::2]:" whoami --from box '[2001:db8:ffff:1::80]:7'
expect "the LAN client over IPv6: routed, not NATed" "[2001:db8:50::10]:" whoami --from lan '[2001:db8:ffff::80]:7'

expect "the LAN client over IPv4: NATed to wan1" "10.101.0.2:" whoami --from lan 198.51.100.80:7

step "What braid keeps beside routes: MPTCP endpoints per uplink, and its own nftables table"
ip -n "$box" mptcp endpoint show
ip -n "$box" mptcp limits show
ip netns exec "$box" nft list table inet braid | grep -E '^\s*(chain|set) ' | sed 's/{$//'
echo "  (the whole table: ip netns exec $box nft list table inet braid)"

# waitfor SECONDS DESCRIPTION CMD...: run CMD until it succeeds, printing a
# dot a second, for at most SECONDS; say how long it took.
waitfor() {
	local secs=$1 what=$2 start=$SECONDS
	shift 2
	printf '  ..   %s ' "$what"
	while ! "$@" >/dev/null 2>&1; do
		if ((SECONDS - start >= secs)); then
			printf '\n  %sFAIL%s %s: not within %ss\n' "$red" "$off" "$what" "$secs"
			failed=1
			return 1
		fi
		printf '.'
		sleep 1
	done
	printf ' %sok%s after %ss\n' "$green" "$off" "$((SECONDS - start))"
}
# leaves_by ADDR: the LAN client's connection to the server is seen from ADDR.
leaves_by() { [[ $(whoami --from lan 198.51.100.80:7 2>/dev/null) == "$1:"* ]]; }
# status_has TEXT: braid status says TEXT.
status_has() { "$braid" --netns "$box" status 2>/dev/null | grep -q -- "$1"; }

spec2=specs/lab-uplinks.yaml
step "braid --netns $box run -f $spec2: isp1 from the ONT's DHCP server (vendor class neufbox...), isp2's IPv6 from adverts, both tracked"
log=$(mktemp)
"$braid" --netns "$box" run -f "$spec2" >"$log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null' EXIT
waitfor 60 "a DHCP lease on wan1 (dnsmasq answers only neufbox...)" status_has "lease4  uplink/isp1"
"$braid" --netns "$box" status | grep -E "lease4|slaac|router6|health " | sed 's/^/      /'
waitfor 60 "both uplinks healthy" bash -c "'$braid' --netns '$box' status | grep -c '): healthy\$' | grep -qx 2"
waitfor 30 "the LAN leaves by isp1 (10.101.0.2, leased)" leaves_by 10.101.0.2

step "An outage on isp1 (braid lab fault isp1 blackhole): traffic moves to isp2"
"$braid" lab fault --name "$lab" isp1 blackhole
waitfor 30 "the LAN leaves by isp2 (10.102.0.2)" leaves_by 10.102.0.2
"$braid" --netns "$box" status | grep -E "session\[health" | sed 's/^/      /'
"$braid" lab fault --name "$lab" isp1 clear
waitfor 60 "isp1 heals: the LAN leaves by isp1 again" leaves_by 10.101.0.2

kill "$daemon"
wait "$daemon" 2>/dev/null
trap - EXIT
echo "  (braid run's log: $log)"

# braid's resolver on the LAN: the uplinks' resolvers (the lab's unbound,
# learnt by DHCP and from adverts), AAAA kept, a per-domain egress name
# out of isp2, the LAN's DNS to other resolvers intercepted.
step "braid --netns $box run -f specs/lab-dns.yaml: braid's resolver on the LAN (192.168.50.1, 2001:db8:50::1)"
log5=$(mktemp)
"$braid" --netns "$box" run -f specs/lab-dns.yaml >"$log5" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null' EXIT
lookup() { "$braid" lab lookup --name "$lab" --from lan --timeout 2s "$@"; }
# answers SERVER NAME TYPE WANT: the LAN's answer for NAME holds WANT.
answers() { lookup "$1" "$2" "$3" 2>/dev/null | grep -q -- "$4"; }
waitfor 60 "the LAN resolves www.lab.example (A) through braid" answers 192.168.50.1:53 www.lab.example A 198.51.100.80
waitfor 10 "... and its AAAA, intact" answers "[2001:db8:50::1]:53" www.lab.example AAAA 2001:db8:ffff::80
lookup 192.168.50.1:53 stream.lab.example A | grep -E '^stream' | sed 's/^/      /'
ip netns exec "$box" nft list set inet braid egress_isp2_v4 | grep -E 'elements' | sed 's/^\s*/      /'
expect "the LAN's connection to stream.lab.example (per-domain egress)" 10.102.0.2 whoami --from lan 198.51.100.200:7
waitfor 10 "the LAN asks 198.51.100.53 itself: braid answers (intercept; alias.lab.example's AAAA filtered)" \
	bash -c "'$braid' lab lookup --name '$lab' --from lan 198.51.100.53:53 alias.lab.example AAAA | grep -q 'ANSWER: 2,'"
"$braid" --netns "$box" status | grep -E "session\[dns" | sed 's/^/      /'
kill "$daemon"
wait "$daemon" 2>/dev/null
trap - EXIT
echo "  (braid run's log: $log5)"

# The LAN's IPv6 from a delegated prefix, as SFR's 6PE gives it (there over
# an L2TP tunnel, here natively from isp2, whose Kea delegates /56s).
spec3=$(mktemp --suffix=.yaml)
sed 's/^      subnet: 1$/      subnet: 1\n      advertise: true/' specs/lab-pd.yaml >"$spec3"
lan=$lab-lan
step "braid --netns $box run -f specs/lab-pd.yaml, with lan.ipv6.advertise: a /56 from isp2's DHCPv6 server, a /64 of it advertised on the LAN"
ip netns exec "$lan" sysctl -qw net.ipv6.conf.eth0.accept_ra=2 net.ipv6.conf.eth0.autoconf=1
log3=$(mktemp)
"$braid" --netns "$box" run -f "$spec3" >"$log3" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null' EXIT
delegated() { "$braid" --netns "$box" status 2>/dev/null | grep -oE '^ *prefix +uplink/isp2 .*: 2001:db8:d2[0-9a-f:]*/56' | grep -oE '2001:db8:d2[0-9a-f:]*/56'; }
waitfor 60 "a prefix delegated by Kea" delegated
pfx=$(delegated)
"$braid" --netns "$box" status | grep -E "^ *prefix|session\[(dhcp6|advertise)" | sed 's/^/      /'
# Kea installs no route: the ISP's router sends the prefix to the box.
boxll=$(ip -n "$box" -6 -o addr show dev wan2 scope link | awk '{print $4}' | cut -d/ -f1 | head -1)
ip -n "$lab-isp2" -6 route replace "$pfx" via "$boxll" dev down
lanaddr() { ip -n "$lan" -6 -o addr show dev eth0 scope global | awk '{print $4}' | cut -d/ -f1 | grep "^2001:db8:d2"; }
waitfor 60 "the LAN client forms an address in $pfx from braid's adverts" lanaddr
addr=$(lanaddr | head -1)
seen() { [[ $(whoami --from lan --bind "$addr" "[2001:db8:ffff::80]:7" 2>/dev/null) == "[$addr]:"* ]]; }
waitfor 30 "the Internet server sees the LAN client as $addr" seen
kill "$daemon"
wait "$daemon" 2>/dev/null
trap - EXIT
echo "  (braid run's log: $log3)"

# Aggregation: braid's transparent proxy on the box, braid's peer in the
# lab's peer namespace (braid lab up runs it, with a random key in the
# lab's run directory, which the spec names), one Multipath TCP
# connection per LAN connection with a subflow per uplink.
spec4=$(mktemp --suffix=.yaml)
sed "s#/run/braid-lab/braid/#/run/braid-lab/$lab/#" specs/lab-aggregation.yaml >"$spec4"
step "braid --netns $box run -f specs/lab-aggregation.yaml: the LAN's TCP through braid's peer ($lab-peer, 10.203.0.2:65101), over Multipath TCP on both uplinks"
log4=$(mktemp)
"$braid" --netns "$box" run -f "$spec4" >"$log4" 2>&1 &
daemon=$!
dlpid=
trap 'kill $daemon $dlpid 2>/dev/null; wait $daemon 2>/dev/null' EXIT
through_peer() { [[ $(whoami --from lan 198.51.100.80:7 2>/dev/null) == "10.203.0.2:"* ]]; }
waitfor 60 "the LAN's TCP goes through the peer" through_peer
expect "the LAN client over IPv4: through the peer" "10.203.0.2:" whoami --from lan 198.51.100.80:7
expect "the LAN client over IPv6: through the peer" "[2001:db8:203::2]:" whoami --from lan '[2001:db8:ffff::80]:7'
"$braid" --netns "$box" status | grep -E "session\[proxy" | sed 's/^/      /'

# subflows: the box's MPTCP subflows to the peer that belong to the
# connection that carried the most (ss -ti: the kernel's own counters),
# one line each: local address, uplink, bytes received.
subflows() {
	ip netns exec "$box" ss -tinH state established dst 10.203.0.2 | awk '
		/^[0-9]/ { local = $3; sub(/%.*:/, ":", local); next }
		/tcp-ulp-mptcp/ {
			tok = $0; sub(/.*token:[0-9a-f]+\(id:[0-9]+\)\//, "", tok); sub(/\(.*/, "", tok)
			rx = $0; if (!sub(/.*bytes_received:/, "", rx)) rx = "0"; sub(/ .*/, "", rx)
			n++; l[n] = local; t[n] = tok; r[n] = rx; sum[tok] += rx
		}
		END {
			for (k in sum) if (best == "" || sum[k] > sum[best]) best = k
			for (i = 1; i <= n; i++) if (t[i] == best) {
				split(l[i], a, ":"); up = a[1] == "10.101.0.2" ? "wan1, isp1" : a[1] == "10.102.0.2" ? "wan2, isp2" : "?"
				printf "  subflow  %-17s (%s) -> 10.203.0.2:65101  %8.1f MB received\n", l[i], up, r[i] / 1e6
			}
		}' | sort -k2,2
}
# both_carry: the download's connection has a subflow from each uplink,
# each past 256 kB.
both_carry() { [ "$(subflows | awk '$7 >= 0.3 { print $2 }' | cut -d: -f1 | sort -u | wc -l)" -ge 2 ]; }
# isp2_mb: the MB the download's isp2 subflows received.
isp2_mb() { subflows | awk '$4 == "isp2)" { s += $7 } END { print s + 0 }'; }
# isp2_past MB: isp2's subflows received more than MB.
isp2_past() { awk -v now="$(isp2_mb)" -v then="$1" 'BEGIN { exit !(now > then) }'; }

step "A LAN client downloads 12 MB (braid lab download --from lan 198.51.100.80:9001): one connection, a subflow per uplink"
dl=$(mktemp)
start=$(date +%s.%N)
"$braid" lab download --name "$lab" --from lan --size 12M --every 500ms 198.51.100.80:9001 >"$dl" 2>&1 &
dlpid=$!
waitfor 30 "both uplinks carry the download" both_carry
echo "  (ss -ti in $box: the kernel's own counters of each subflow; ss -tiM adds the MPTCP connection)"
subflows

step "isp1 fails in the middle of it (braid lab fault isp1 blackhole): the download goes on over isp2"
"$braid" lab fault --name "$lab" isp1 blackhole
at=$(awk -v now="$(date +%s.%N)" -v start="$start" 'BEGIN { printf "%.1f", now - start }')
then=$(isp2_mb)
waitfor 30 "isp2's subflow carries 1 MB more" isp2_past "$(awk -v m="$then" 'BEGIN { print m + 1 }')"
subflows
if wait "$dlpid"; then
	awk -v at="$at" '!m && $1 + 0 > at { printf "  -- %.1fs: isp1 blackholed --\n", at; m = 1 } { print "  " $0 }' "$dl"
	printf '  %sok%s   the download completed through the peer, isp1 down since %.1fs\n' "$green" "$off" "$at"
else
	sed 's/^/  /' "$dl"
	printf '  %sFAIL%s the download broke when isp1 failed\n' "$red" "$off"
	failed=1
fi
"$braid" lab fault --name "$lab" isp1 clear >/dev/null
kill "$daemon"
wait "$daemon" 2>/dev/null
trap - EXIT
echo "  (braid run's log: $log4)"

echo
if [ "$failed" -ne 0 ]; then
	echo "${red}The demo found a problem (above).${off}"
	exit 1
fi
echo "${green}The box is configured.${off} Look around: ip netns exec $box bash; $braid --netns $box show"
echo "Try: $braid --netns $box run -f $spec2 & then $braid --netns $box status, $braid lab fault --name $lab isp2 down"
echo "     $braid --netns $box run -f $spec4 & then $braid lab download --name $lab --from lan --size 50M 198.51.100.80:9001"
echo "Remove the lab with: make demo-down (or $braid lab down --name $lab)"

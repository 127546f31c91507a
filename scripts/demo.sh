#!/usr/bin/env bash
# The demo (make demo): a lab, one `braid run` of specs/lab-demo.yaml in
# its box, and a fixed list of steps (STEPS below), each saying in one line
# what it proves and ending ok, failed or not built. It ends with a summary
# of every step in that order and exits non-zero when a step failed or
# never reported. Usage (as root):
#   demo.sh BRAID_BINARY [LAB_NAME]
# DEMO_LNS=real uses the real LNS of ../shared/peers/lns/run-lns.sh for the
# 6PE step (a QEMU guest: slow) instead of `braid lab lns`.
# DEMO_CI=1 (make demo-ci) prints no "try next" and removes the work
# directory when every step passed.
set -uo pipefail # not -e: every step reports its own verdict.
braid=${1:?usage: demo.sh BRAID_BINARY [LAB_NAME]}
lab=${2:-braid}

# The steps, declared once: the order they run and the summary lists them
# in, each with what it proves. A step missing from the summary fails the
# demo as a failed one does.
STEPS=(
	"lab|the lab comes up: LAN client, box, SFR-like fibre ISP, a second ISP with another rate and RTT, the peer, the Internet"
	"plan|braid plans specs/lab-demo.yaml for the box, and braid run applies that plan"
	"lease|the fibre uplink is leased by the ONT's DHCP server, which answers only vendor class neufbox..."
	"landhcp|the LAN client's DHCP lease comes from braid: its static address, the box as router and DNS"
	"dns|braid's resolver on the LAN answers it"
	"ipv6|the LAN client gets an address from the prefix isp2 delegates, and reaches an IPv6 server with it"
	"aggregate|one LAN download through braid's peer rides both ISPs, at least 1.3x the faster uplink alone"
	"failover|isp1 fails in the middle of that download, and the download carries on over isp2"
	"6pe|IPv6 over SFR's 6PE: L2TP and PPP to an LNS behind isp1, a prefix delegated over it, reaching an IPv6 server"
)
# The lab's rate limits and the round-trip time added to isp2 (braid lab
# delay): their sum beats the faster one by far more than 1.3x (1.875x).
# They are low enough that a busy 2-core machine still carries their sum
# through the proxy, the peer and the lab's delay line, all in userspace:
# at 20 and 16 Mbit/s a loaded CI machine reached only 1.26x.
rate1=8M rate2=7M rtt2=10ms
minratio=1.3
box=$lab-box lan=$lab-lan
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${BRAID_SHARED:-$root/../shared}

bold=$'\e[1m' green=$'\e[32m' red=$'\e[31m' yellow=$'\e[33m' off=$'\e[0m'
[ -t 1 ] || bold='' green='' red='' yellow='' off=''
work=$(mktemp -d /tmp/braid-demo.XXXXXX)
spec=$work/lab-demo.yaml # the spec braid run follows
declare -A verdict why
daemon='' dlpid='' lns_stop=''
t0=$SECONDS

cleanup() {
	[ -n "$dlpid" ] && kill "$dlpid" 2>/dev/null
	if [ -n "$daemon" ]; then
		kill "$daemon" 2>/dev/null
		wait "$daemon" 2>/dev/null
	fi
	[ -n "$lns_stop" ] && eval "$lns_stop" >/dev/null 2>&1
	"$braid" lab fault --name "$lab" isp1 clear >/dev/null 2>&1
}
trap finish EXIT
trap 'exit 143' TERM INT

say() { printf '      %s\n' "$@"; }
indent() { sed 's/^/      /'; }
# waitfor SECONDS DESCRIPTION CMD...: run CMD until it succeeds, a dot a
# second, for at most SECONDS.
waitfor() {
	local secs=$1 what=$2 start=$SECONDS
	shift 2
	printf '  ..  %s ' "$what"
	while ! "$@" >/dev/null 2>&1; do
		if ((SECONDS - start >= secs)); then
			printf ' %snot within %ss%s\n' "$red" "$secs" "$off"
			return 1
		fi
		printf '.'
		sleep 1
	done
	printf ' after %ss\n' "$((SECONDS - start))"
}
# dots LOG DESCRIPTION CMD...: run CMD, its output to LOG, a dot a second
# while it runs; its exit status.
dots() {
	local log=$1 what=$2 start=$SECONDS pid rc=0
	shift 2
	printf '  ..  %s ' "$what"
	"$@" >"$log" 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		kill -0 "$pid" 2>/dev/null && printf '.'
	done
	wait "$pid" || rc=$?
	if [ "$rc" -eq 0 ]; then printf ' after %ss\n' "$((SECONDS - start))"; else printf ' %sfailed (exit %s)%s\n' "$red" "$rc" "$off"; fi
	return "$rc"
}
# fail REASON, notbuilt REASON: a step's verdict other than ok, with why.
fail() { why[$cur]=$1; return 1; }
notbuilt() { why[$cur]=$1; return 2; }

bstatus() { "$braid" --netns "$box" status 2>/dev/null; }
# (grep reads all its input: with pipefail, grep -q closing the pipe
# early would fail the writer with SIGPIPE.)
status_has() { bstatus | grep -- "$1" >/dev/null; }
converged() { local s; s=$(bstatus) && grep -q '^last pass:  converged' <<<"$s" && grep -q ' 0 pending, 0 error' <<<"$s"; }
whoami() { "$braid" lab whoami --name "$lab" --timeout 3s "$@"; }
running() { [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; }
# need_daemon: later steps fail at once, not after their deadlines, when
# braid run has gone.
need_daemon() { running || fail "braid run is not running (its log: $work/run.log)"; }
# start_run SPEC LOG [ENV...]: braid run in the box, in the background.
start_run() {
	local s=$1 log=$2
	shift 2
	env "$@" "$braid" --netns "$box" run -f "$s" >"$log" 2>&1 &
	daemon=$!
}
stop_run() {
	[ -n "$daemon" ] || return 0
	kill "$daemon" 2>/dev/null
	wait "$daemon" 2>/dev/null
	daemon=''
}
# txbytes ISP: bytes the ISP sent to the box (its link "down"), the
# kernel's own counter.
txbytes() { ip netns exec "$lab-$1" cat /sys/class/net/down/statistics/tx_bytes; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }

# --- the summary: every declared step, in order ------------------------
summary() {
	local bad=0 s id v c
	printf '\n%sThe demo, lab %s, in %ss%s\n' "$bold" "$lab" "$((SECONDS - t0))" "$off"
	for s in "${STEPS[@]}"; do
		id=${s%%|*} v=${verdict[${s%%|*}]:-missing}
		case $v in
		ok) c=$green ;;
		"not built") c=$yellow ;;
		*) c=$red bad=1 ;;
		esac
		printf '  %-10s %s%-10s%s %s\n' "$id" "$c" "$v" "$off" "${s#*|}"
		[ "$v" = ok ] || printf '  %-10s %-10s %s\n' '' '' "(${why[$id]:-the step never reported})"
	done

	if [ -n "${DEMO_CI:-}" ]; then
		# make demo-ci removes the lab next; the work directory goes
		# too unless a step failed (its logs say why).
		[ "$bad" -ne 0 ] || rm -rf "$work"
	else
		cat <<-EOF

	Try next (the lab stays up; braid run is stopped):
	  $braid --netns $box run -f $spec &     # the demo's spec, aggregation on
	  $braid --netns $box status             # leases, prefixes, sessions, health, the peer
	  edit $spec: braid run applies each save (a plan in its log; braid status shows the revision)
	  $braid lab fault --name $lab isp1 blackhole   # then isp1 clear; also loss 30, unplug, down
	  $braid lab download --name $lab --from lan --size 50M 198.51.100.80:9001
	Tear down: make demo-down LAB=$lab (or $braid lab down --name $lab)
	EOF
	fi
	if [ "$bad" -ne 0 ]; then
		echo "${red}A step failed or never reported (above).${off}"
		return 1
	fi
}

# finish: the EXIT trap, however the script ends: stop what the demo
# started, print the summary, and exit non-zero when a step failed or
# never reported, or when the script itself failed.
finish() {
	local rc=$?
	trap - EXIT
	cleanup
	summary || [ "$rc" -ne 0 ] || rc=1
	exit "$rc"
}

# --- the steps ---------------------------------------------------------

step_lab() {
	"$braid" lab down --name "$lab" >/dev/null || fail "braid lab down failed" || return
	dots "$work/lab-up.log" "braid lab up --name $lab --rate isp1=$rate1 --rate isp2=$rate2" \
		"$braid" lab up --name "$lab" --rate isp1=$rate1 --rate isp2=$rate2 ||
		{ indent <"$work/lab-up.log"; fail "braid lab up failed"; return; }
	say "namespaces: $(ip netns list | awk -v p="^$lab-" '$1 ~ p { print $1 }' | sort | xargs)"
	sed -n '/^  PROCESS/,/^$/p' "$work/lab-up.log" | grep -v '^$' | indent
	"$braid" lab delay --name "$lab" isp2 "$rtt2" | indent || fail "braid lab delay failed" || return
	# The delay line is a process (this kernel has no netem): on a busy
	# machine, a starved line would add far more than rtt2 and measure
	# the machine, not braid. It plays a wire: it gets the CPU first.
	local pid t
	pid=$("$braid" lab status --name "$lab" | awk '$1 == "delay-isp2" && $4 == "running" { print $3 }')
	for t in /proc/$pid/task/*; do renice -n -10 -p "${t##*/}" >/dev/null; done
	say "isp1: the fibre, $rate1""bit/s, its ONT's DHCP server (dnsmasq) answers only vendor class neufbox..."
	say "isp2: $rate2""bit/s, $rtt2 more round trip, IPv6 by adverts (radvd) and prefix delegation (Kea)"
	say "peer: braid run of a kind: Peer spec on 10.203.0.2:65101; inet: whoami, download server, unbound"
}

step_plan() {
	# The spec without its last block (aggregation), which the aggregate
	# step adds to the running spec; the peer's key is in this lab's
	# run directory.
	sed "s#/run/braid-lab/braid/#/run/braid-lab/$lab/#" "$root/specs/lab-demo.yaml" >"$work/lab-demo-full.yaml"
	sed '/^  aggregation:/,$d' "$work/lab-demo-full.yaml" >"$spec"
	local rc=0
	"$braid" --netns "$box" plan -f "$spec" >"$work/plan.txt" 2>&1 || rc=$?
	[ "$rc" -eq 2 ] || { indent <"$work/plan.txt"; fail "braid plan exited $rc, want 2 (changes)"; return; }
	# The plan, but for its nftables objects and sysctls (counted).
	grep -vE '^  [-+~] (nft\.|sysctl\[)' "$work/plan.txt" | grep -v '^$' | indent
	say "... and $(grep -cE '^  [-+~] nft\.' "$work/plan.txt") nftables objects, $(grep -cE '^  [-+~] sysctl\[' "$work/plan.txt") sysctls (the whole plan: $work/plan.txt)"
	start_run "$spec" "$work/run.log"
	say "braid --netns $box run -f $spec (its log: $work/run.log)"
	waitfor 60 "braid run converges: the plan applied, every object done" \
		converged ||
		{ need_daemon || return; bstatus | head -12 | indent; fail "braid run did not converge within 60s"; return; }
	bstatus | grep -E '^(revision|last pass|objects):' | indent
}

step_lease() {
	need_daemon || return
	waitfor 60 "a DHCP lease on wan1" status_has "lease4  uplink/isp1" ||
		{ fail "no lease on wan1 within 60s"; return; }
	bstatus | grep -E '^ *lease4 ' | indent
	say "the ONT's side (dnsmasq's log in $lab-isp1):"
	grep -E 'vendor class|tags:|DHCPACK' "/run/braid-lab/$lab/procs/isp1-dhcp.log" | tail -3 | indent
	status_has 'lease4  uplink/isp1 .*: 10\.101\.0\.2/24 via 10\.101\.0\.1' ||
		fail "the lease is not the ONT's 10.101.0.2/24 via 10.101.0.1"
}

step_landhcp() {
	need_daemon || return
	command -v busybox >/dev/null || { fail "needs busybox (scripts/deps.sh installs it)"; return; }
	waitfor 30 "braid's DHCP server runs on lan0" status_has 'running *session\[dhcpserver/lan\]' ||
		{ fail "the LAN DHCP server is not running"; return; }
	# busybox udhcpc asks from the LAN client; its script only records
	# what it was given (the client's address is already configured).
	printf '#!/bin/sh\nenv > "%s/udhcpc.$1"\n' "$work" >"$work/udhcpc.sh"
	chmod +x "$work/udhcpc.sh"
	rm -f "$work/udhcpc.bound"
	if ! timeout 60 ip netns exec "$lan" busybox udhcpc -f -q -n -t 30 -T 1 -i eth0 -s "$work/udhcpc.sh" >"$work/udhcpc.log" 2>&1 ||
		[ ! -s "$work/udhcpc.bound" ]; then
		indent <"$work/udhcpc.log"
		fail "udhcpc on the LAN client got no lease"
		return
	fi
	local ip router dns server lease
	ip=$(sed -n 's/^ip=//p' "$work/udhcpc.bound") router=$(sed -n 's/^router=//p' "$work/udhcpc.bound")
	dns=$(sed -n 's/^dns=//p' "$work/udhcpc.bound") server=$(sed -n 's/^serverid=//p' "$work/udhcpc.bound")
	lease=$(sed -n 's/^lease=//p' "$work/udhcpc.bound")
	say "udhcpc (busybox) on the LAN client: ip $ip, router $router, dns $dns, server $server, lease ${lease}s"
	bstatus | grep -E 'session\[dhcpserver' | indent
	[ "$ip" = 192.168.50.10 ] && [ "$router" = 192.168.50.1 ] && [ "$server" = 192.168.50.1 ] && [[ " $dns " == *" 192.168.50.1 "* ]] ||
		fail "want ip 192.168.50.10 (the static lease), router, server and dns 192.168.50.1"
}

step_dns() {
	need_daemon || return
	answers() { "$braid" lab lookup --name "$lab" --from lan --timeout 2s "$1" "$2" "$3" 2>/dev/null | grep -- "$4" >/dev/null; }
	waitfor 60 "the LAN asks braid (192.168.50.1) for www.lab.example" answers 192.168.50.1:53 www.lab.example A 198.51.100.80 ||
		{ fail "no answer from braid's resolver on 192.168.50.1"; return; }
	"$braid" lab lookup --name "$lab" --from lan 192.168.50.1:53 www.lab.example A | grep -E '^www' | indent
	waitfor 10 "and over IPv6 (2001:db8:50::1), its AAAA" answers "[2001:db8:50::1]:53" www.lab.example AAAA 2001:db8:ffff::80 ||
		{ fail "no AAAA from braid's resolver on 2001:db8:50::1"; return; }
	"$braid" lab lookup --name "$lab" --from lan "[2001:db8:50::1]:53" www.lab.example AAAA | grep -E '^www' | indent
	bstatus | grep -E 'session\[dns' | indent
}

delegated() { bstatus | grep -oE '^ *prefix +uplink/isp2 .*: 2001:db8:d2[0-9a-f:]*/56' | grep -oE '2001:db8:d2[0-9a-f:]*/56'; }
step_ipv6() {
	need_daemon || return
	ip netns exec "$lan" sysctl -qw net.ipv6.conf.eth0.accept_ra=2 net.ipv6.conf.eth0.autoconf=1
	waitfor 60 "a /56 delegated by isp2's DHCPv6 server (Kea)" delegated || { fail "no prefix delegated within 60s"; return; }
	local pfx boxll addr
	pfx=$(delegated)
	bstatus | grep -E '^ *prefix |session\[advertise' | indent
	# Kea installs no route: the ISP's router sends the prefix to the box,
	# as a real ISP's does.
	boxll=$(ip -n "$box" -6 -o addr show dev wan2 scope link | awk '{ print $4 }' | cut -d/ -f1 | head -1)
	ip -n "$lab-isp2" -6 route replace "$pfx" via "$boxll" dev down
	lanaddr() { ip -n "$lan" -6 -o addr show dev eth0 scope global | awk '{ print $4 }' | cut -d/ -f1 | grep "^${pfx%%::*}:"; }
	waitfor 60 "the LAN client forms an address in $pfx from braid's adverts" lanaddr ||
		{ fail "the LAN client formed no address in $pfx"; return; }
	addr=$(lanaddr | head -1)
	seen() { [[ $(whoami --from lan --bind "$addr" "[2001:db8:ffff::80]:7" 2>/dev/null) == "[$addr]:"* ]]; }
	waitfor 30 "the Internet server ([2001:db8:ffff::80]:7) sees the LAN client as $addr" seen ||
		fail "the IPv6 server did not see $addr"
}

# rate FILE FROM [TO]: MB/s of a braid lab download's progress lines
# between the first at FROM seconds or later and the last at TO or
# before (the end without TO).
rate() {
	awk -v from="$2" -v to="${3:-1e9}" '
		{ t = $1; sub(/s$/, "", t); t += 0; b = $2 + 0 }
		t >= from && !started { t0 = t; b0 = b; started = 1 }
		t <= to { t1 = t; b1 = b }
		END { if (!started || t1 <= t0) exit 1; printf "%.2f", (b1 - b0) / (t1 - t0) }' "$1"
}
# subflows: the box's MPTCP subflows to the peer of the connection that
# carried the most (ss -ti: the kernel's counters), a line each.
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
				printf "subflow %-17s (%s) -> 10.203.0.2:65101  %6.1f MB received\n", l[i], up, r[i] / 1e6
			}
		}' | sort -k2,2
}
# follow FILE: print the lines of FILE not printed yet (shown counts them).
shown=0
follow() {
	local n
	n=$(wc -l <"$1")
	((n > shown)) && sed -n "$((shown + 1)),${n}p" "$1" | indent
	shown=$n
}

dl=''
step_aggregate() {
	need_daemon || return
	local base agg ratio i1 i2 d1 d2 size=6M
	# The faster uplink alone: the same LAN download with the spec's
	# aggregation still off (NATed out of isp1, the default route).
	say "the faster uplink alone: braid lab download --from lan --size $size 198.51.100.80:9001 (aggregation off: NATed out of isp1)"
	# (isp1's tracker does not count the rounds it could not send before
	# its lease: the LAN leaves by isp1 as soon as it is leased.)
	leaves_by_isp1() { [[ $(whoami --from lan 198.51.100.80:7 2>/dev/null) == 10.101.0.2:* ]]; }
	waitfor 60 "the LAN leaves by isp1 (healthy, priority 10)" leaves_by_isp1 ||
		{ bstatus | grep -E '^ *health ' | indent; fail "the LAN does not leave by isp1 before aggregation"; return; }
	i1=$(txbytes isp1) i2=$(txbytes isp2)
	"$braid" lab download --name "$lab" --from lan --size "$size" --every 500ms --timeout 60s 198.51.100.80:9001 >"$work/alone.txt" 2>&1 &
	dlpid=$!
	shown=0
	while kill -0 "$dlpid" 2>/dev/null; do
		follow "$work/alone.txt"
		sleep 0.5
	done
	follow "$work/alone.txt"
	wait "$dlpid" || { dlpid=''; fail "the download out of isp1 alone failed"; return; }
	dlpid=''
	d1=$(($(txbytes isp1) - i1)) d2=$(($(txbytes isp2) - i2))
	say "the ISPs' own counters (their links to the box, sent): isp1 $(mb $d1) MB, isp2 $(mb $d2) MB"
	base=$(rate "$work/alone.txt" 1.5) || { fail "the download out of isp1 was too short to measure"; return; }

	say "edit the running spec: add its aggregation block (braid run follows the file)"
	diff "$spec" "$work/lab-demo-full.yaml" | grep '^>' | indent
	cp "$work/lab-demo-full.yaml" "$spec.new" && mv "$spec.new" "$spec"
	through_peer() { [[ $(whoami --from lan 198.51.100.80:7 2>/dev/null) == "10.203.0.2:"* ]]; }
	waitfor 60 "the LAN's TCP goes through the peer (the server sees 10.203.0.2)" through_peer ||
		{ fail "the LAN's TCP never went through the peer"; return; }
	waitfor 30 "the peer answers over both uplinks" status_has 'peer up over isp1, isp2' ||
		{ bstatus | grep -E 'session\[proxy' | indent; fail "the peer is not up over both uplinks"; return; }

	# One download, measured from 1.5 s (both subflows past their slow
	# start) to 6.5 s (or 11 MB), long enough that a stall of the busy
	# machine's scheduler is not the measure: then the
	# failover step blackholes isp1 in its middle.
	size=16M
	say "both uplinks: braid lab download --from lan --size $size 198.51.100.80:9001, through braid's proxy and peer"
	dl=$work/download.txt
	: >"$dl"
	shown=0
	i1=$(txbytes isp1) i2=$(txbytes isp2)
	"$braid" lab download --name "$lab" --from lan --size "$size" --every 500ms --timeout 120s 198.51.100.80:9001 >"$dl" 2>&1 &
	dlpid=$!
	local start=$SECONDS
	until awk '{ t = $1; sub(/s$/, "", t) } t + 0 >= 6.5 || $2 + 0 >= 11 { f = 1 } END { exit !f }' "$dl"; do
		if ! kill -0 "$dlpid" 2>/dev/null || ((SECONDS - start > 60)); then
			follow "$dl"
			fail "the download ended or stalled before it could be measured"
			return
		fi
		follow "$dl"
		sleep 0.5
	done
	follow "$dl"
	d1=$(($(txbytes isp1) - i1)) d2=$(($(txbytes isp2) - i2))
	subflows | indent
	agg=$(rate "$dl" 1.5 6.5) || { fail "the download was too short to measure"; return; }
	ratio=$(awk -v a="$agg" -v b="$base" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
	say "the ISPs' own counters (their links to the box, sent): isp1 $(mb $d1) MB, isp2 $(mb $d2) MB"
	say "rate from 1.5 s on: isp1 alone $base MB/s, both through the peer $agg MB/s: ${ratio}x (want at least ${minratio}x)"
	((d1 > 1000000 && d2 > 1000000)) || { fail "not both ISPs carried it: isp1 $(mb $d1) MB, isp2 $(mb $d2) MB"; return; }
	awk -v r="$ratio" -v m="$minratio" 'BEGIN { exit !(r >= m) }' || fail "${ratio}x the faster uplink alone, want at least ${minratio}x"
}

step_failover() {
	[ -n "$dlpid" ] && kill -0 "$dlpid" 2>/dev/null || { fail "no download running (the aggregate step did not get that far)"; return; }
	local at then
	follow "$dl"
	at=$(tail -1 "$dl" | awk '{ print $1 }')
	"$braid" lab fault --name "$lab" isp1 blackhole | indent
	then=$(txbytes isp2)
	say "-- isp1 blackholed after ${at} of the download --"
	local start=$SECONDS
	while kill -0 "$dlpid" 2>/dev/null && ((SECONDS - start < 90)); do
		follow "$dl"
		sleep 0.5
	done
	follow "$dl"
	local rc=0
	wait "$dlpid" || rc=$?
	dlpid=''
	local d2=$(($(txbytes isp2) - then))
	say "isp2 sent $(mb $d2) MB more after isp1 failed (its link's counter)"
	bstatus | grep -E 'session\[(health/isp1|proxy)' | indent
	"$braid" lab fault --name "$lab" isp1 clear >/dev/null
	[ "$rc" -eq 0 ] && grep -q 'done' "$dl" || { fail "the download broke when isp1 failed"; return; }
	((d2 > 1000000)) || fail "isp2 carried nothing after isp1 failed"
}

step_6pe() {
	local how=test
	if [ "${DEMO_LNS:-}" = real ]; then
		[ -x "$shared/peers/lns/run-lns.sh" ] || { fail "DEMO_LNS=real but $shared/peers/lns/run-lns.sh is not there"; return; }
		how=real
	fi
	stop_run # one writer per namespace: the 6PE spec's braid run replaces it
	if [ "$how" = real ]; then
		say "the real LNS (xl2tpd, pppd, Kea in a QEMU guest) at 10.77.1.2, on a bridge in $lab-isp1"
		exec {lockfd}>/run/lock/braid-lnstest.lock
		# One LNS guest at a time on this machine (internal/lnstest's lock;
		# flock on the inherited descriptor holds it for this shell).
		flock -n "$lockfd" || dots /dev/null "another LNS runs (a test's): waiting for /run/lock/braid-lnstest.lock" flock -w 600 "$lockfd" ||
			{ fail "another LNS held /run/lock/braid-lnstest.lock for 10 minutes"; return; }
		local lw=/run/braid-lab/$lab/lns
		mkdir -p "$lw"
		dots "$work/lns-build.log" "run-lns.sh build (the guest image, cached in /var/cache/braid-lns)" \
			env LNS_WORK=/var/cache/braid-lns "$shared/peers/lns/run-lns.sh" build || { tail -5 "$work/lns-build.log" | indent; fail "run-lns.sh build failed"; return; }
		for f in vmlinux initrd.img image.key; do ln -f "/var/cache/braid-lns/$f" "$lw/$f"; done
		local env="LNS_WORK=$lw LNS_NETNS=$lab-isp1 LNS_USER=dhcp/10.101.0.2@0024d4aabbcc LNS_PASS=testpass"
		lns_stop="env $env '$shared/peers/lns/run-lns.sh' stop; exec $lockfd>&-"
		dots "$work/lns.log" "run-lns.sh start (boots the guest, waits for xl2tpd)" \
			env $env "$shared/peers/lns/run-lns.sh" start || { tail -5 "$work/lns.log" | indent; fail "run-lns.sh start failed"; return; }
	else
		say "braid's test LNS at 10.77.1.2, behind isp1"
		dots "$work/lns.log" "braid lab lns up --name $lab" "$braid" lab lns up --name "$lab" || { indent <"$work/lns.log"; fail "braid lab lns up failed"; return; }
		lns_stop="'$braid' lab lns down --name '$lab'"
	fi
	ip -n "$lab-inet" -6 route replace 2001:db8:e000::/40 via 2001:db8:201::2
	start_run "$root/specs/lab-6pe.yaml" "$work/run-6pe.log" BRAID_LAB_PPP_PASSWORD=testpass
	say "braid --netns $box run -f specs/lab-6pe.yaml (its log: $work/run-6pe.log)"
	tunnel_prefix() { bstatus | grep -oE '^ *prefix +tunnel/sixpe .*: 2001:db8:e0[0-9a-f:]*/56' | grep -oE '2001:db8:e0[0-9a-f:]*/56'; }
	waitfor 120 "a prefix delegated over the tunnel (L2TP, PPP, DHCPv6)" tunnel_prefix ||
		{ bstatus | grep -E 'session\[(l2tp|ppp|dhcp6)' | indent; fail "no prefix over the tunnel within 120s"; return; }
	local pfx addr
	pfx=$(tunnel_prefix)
	bstatus | grep -E '^ *prefix +tunnel|session\[(l2tp|ppp)' | indent
	lanaddr6() { ip -n "$lan" -6 -o addr show dev eth0 scope global | awk '{ print $4 }' | cut -d/ -f1 | grep "^${pfx%%::*}:"; }
	waitfor 60 "the LAN client forms an address in $pfx" lanaddr6 || { fail "the LAN client formed no address in $pfx"; return; }
	addr=$(lanaddr6 | head -1)
	seen6() { [[ $(whoami --from lan --bind "$addr" "[2001:db8:ffff::80]:7" 2>/dev/null) == "[$addr]:"* ]]; }
	waitfor 30 "the Internet server sees the LAN client as $addr, through the tunnel" seen6 ||
		fail "the IPv6 server did not see $addr"
}

# --- the run -------------------------------------------------------------

n=${#STEPS[@]} i=0
for s in "${STEPS[@]}"; do
	cur=${s%%|*} what=${s#*|}
	i=$((i + 1))
	printf '\n%s[%d/%d] %s%s: %s\n' "$bold" "$i" "$n" "$cur" "$off" "$what"
	if [ "$cur" != lab ] && [ "${verdict[lab]}" != ok ]; then
		why[$cur]="the lab did not come up"
		verdict[$cur]=failed
	else
		start=$SECONDS rc=0
		"step_$cur" || rc=$?
		case $rc in
		0) verdict[$cur]=ok ;;
		2) verdict[$cur]="not built" ;;
		*) verdict[$cur]=failed ;;
		esac
	fi
	case ${verdict[$cur]} in
	ok) printf '  %s=> ok%s (%ss)\n' "$green" "$off" "$((SECONDS - start))" ;;
	failed) printf '  %s=> failed%s: %s\n' "$red" "$off" "${why[$cur]:-}" ;;
	*) printf '  %s=> not built%s: %s\n' "$yellow" "$off" "${why[$cur]:-}" ;;
	esac
done
exit 0 # finish (the EXIT trap) stops what runs and prints the summary

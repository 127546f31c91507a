#!/usr/bin/env bash
# Installs, idempotently, every Debian package braid's demo, tests and
# benchmarks need. Safe to run on every `make demo` / `make test`: it only
# calls apt-get when something is missing.
set -euo pipefail

packages=(iproute2 nftables iputils-ping tcpdump tshark iperf3 dnsmasq radvd kea-dhcp6-server ndisc6
	shadowsocks-libev socat procps kmod ca-certificates git openssh-server make gcc
	stress-ng iptables ufw)

# Packaging (packaging/, make cross): setpriv, systemd-analyze, and the
# emulators that smoke-run the router builds.
packages+=(util-linux systemd qemu-user-static)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	# tshark asks whether non-root users may capture; answer for it.
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
	echo "deps: Go is in /usr/local/go/bin; add it to PATH" >&2
fi

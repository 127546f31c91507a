#!/usr/bin/env bash
# Installs, idempotently, every Debian package braid's demo, tests and
# benchmarks need. Safe to run on every `make demo` / `make test`: it only
# calls apt-get when something is missing.
set -euo pipefail

packages=(iproute2 nftables iputils-ping tcpdump tshark iperf3 dnsmasq radvd kea-dhcp6-server ndisc6
	shadowsocks-libev socat procps kmod ca-certificates git openssh-server make gcc
	stress-ng iptables ufw unbound busybox)

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
	# The lab runs unbound itself, in a namespace, with its own
	# configuration: the package's system service must not start (nor any
	# other package's), so invoke-rc.d is told no for this install.
	policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		trap 'rm -f "$policy"' EXIT
	fi
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
	echo "deps: Go is in /usr/local/go/bin; add it to PATH" >&2
fi

# api's TestEditor runs the YAML language server editors use (VS Code's YAML
# extension and others), from npm, pinned.
yls_version=1.25.0
if ! command -v yaml-language-server >/dev/null ||
	! npm ls -g --depth=0 "yaml-language-server@$yls_version" >/dev/null 2>&1; then
	if ! command -v npm >/dev/null; then
		echo "deps: installing nodejs npm" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
	fi
	echo "deps: installing yaml-language-server $yls_version (npm)" >&2
	npm install -g --no-fund --no-audit --loglevel=error "yaml-language-server@$yls_version" >/dev/null
fi

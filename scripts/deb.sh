#!/usr/bin/env bash
# Builds braid's Debian package with dpkg-deb alone (no debhelper): the
# static binary, the systemd unit, the example specs and a man page made
# from the --help texts.
#
#   scripts/deb.sh LDFLAGS VERSION [OUTDIR]    (make deb)
#
# GOARCH picks the architecture (default amd64; Debian's names match Go's
# for amd64 and arm64, and armhf is GOARCH=arm GOARM=7). The package is
# bin/braid_<version>_<arch>.deb; its path is the last line printed.
set -euo pipefail
cd "$(dirname "$0")/.."
ldflags=${1:-}
version=${2:-devel}
out=${3:-bin}
goarch=${GOARCH:-amd64}
case $goarch in
amd64 | arm64) debarch=$goarch ;;
arm) debarch=armhf ;;
*) echo "deb: no Debian architecture for GOARCH=$goarch" >&2; exit 1 ;;
esac

# A Debian version starts with a digit and has no hyphen (this is a native
# package): v1.2.3-4-gabc1234 -> 1.2.3+4+gabc1234; an untagged 756ed08-dirty
# -> 0~git756ed08+dirty.
debversion=${version#v}
[[ $debversion =~ ^[0-9]+\.[0-9] ]] || debversion="0~git$debversion"
debversion=${debversion//-/+}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
	"$root/usr/share/doc/braid/examples" "$root/usr/share/man/man8" "$root/etc/braid"

CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=7 go build -trimpath \
	-ldflags "-s -w $ldflags" -o "$root/usr/bin/braid" ./cmd/braid
install -m 0644 packaging/braid.service "$root/lib/systemd/system/braid.service"
for spec in specs/*.yaml specs/*/*.yaml; do
	[[ -e $spec && $(basename "$spec") != lab*.yaml ]] || continue
	install -D -m 0644 "$spec" "$root/usr/share/doc/braid/examples/${spec#specs/}"
done
chmod 0700 "$root/etc/braid"

# The man page: every command's --help, verbatim. Run with the build
# machine's binary when cross-building.
helpbin=$root/usr/bin/braid
if [[ $goarch != $(go env GOHOSTARCH) ]]; then
	helpbin=$stage/braid-host
	CGO_ENABLED=0 GOARCH=$(go env GOHOSTARCH) go build -trimpath -ldflags "$ldflags" -o "$helpbin" ./cmd/braid
fi
roff() { sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"; }
{
	echo ".TH BRAID 8 \"\" \"braid $version\" \"System Administration\""
	echo ".SH NAME"
	echo "braid \\- turn a box with several Internet uplinks into one fast, resilient connection"
	echo ".SH SYNOPSIS"
	echo ".B braid"
	echo ".I command"
	echo "[flags]"
	echo ".SH DESCRIPTION"
	echo ".nf"
	"$helpbin" --help | roff
	echo ".fi"
	echo ".SH COMMANDS"
	for cmd in $("$helpbin" --help | awk '/^Available Commands:/{on=1; next} on && /^$/{exit} on {print $1}'); do
		[[ $cmd == help || $cmd == completion ]] && continue
		echo ".SS braid $cmd"
		echo ".nf"
		"$helpbin" "$cmd" --help | roff
		echo ".fi"
	done
	echo ".SH FILES"
	echo ".TP"
	echo ".I /etc/braid/spec.yaml"
	echo "the spec braid.service runs (examples in /usr/share/doc/braid/examples)"
	echo ".TP"
	echo ".I /var/lib/braid/NETNS, /run/braid/NETNS"
	echo "state (ownership record, facts, last good spec) and runtime (control socket, lock)"
	echo ".SH SEE ALSO"
	echo "README.md in braid's repository."
} | gzip -9n >"$root/usr/share/man/man8/braid.8.gz"

installed_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: braid
Version: $debversion
Architecture: $debarch
Maintainer: braid developers <braid@example.invalid>
Installed-Size: $installed_kb
Section: net
Priority: optional
Homepage: https://github.com/braid-router/braid
Description: declarative reconciler for routers with several Internet uplinks
 braid diffs a YAML spec against the live kernel, shows the plan and
 converges: uplinks (static, DHCP, PPP over L2TP), policy routing, MPTCP
 aggregation through a peer, nftables NAT and firewall, health checks.
 .
 The braid.service unit runs "braid run -f /etc/braid/spec.yaml"; it is
 not enabled on install: write the spec first (examples in
 /usr/share/doc/braid/examples), then systemctl enable --now braid.
CONTROL

# Maintainer scripts: tell a running systemd about the unit; never start
# braid (it rewrites the network) nor enable it. DPKG_ROOT is set when
# dpkg installs into another root (--root, --force-script-chrootless).
cat >"$root/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d "${DPKG_ROOT:-}/run/systemd/system" ] && [ -z "${DPKG_ROOT:-}" ]; then
	systemctl daemon-reload || true
fi
SCRIPT
cat >"$root/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d "${DPKG_ROOT:-}/run/systemd/system" ] && [ -z "${DPKG_ROOT:-}" ]; then
	systemctl disable --now braid.service || true
fi
SCRIPT
cat >"$root/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d "${DPKG_ROOT:-}/run/systemd/system" ] && [ -z "${DPKG_ROOT:-}" ]; then
	systemctl daemon-reload || true
fi
SCRIPT
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

mkdir -p "$out"
deb=$out/braid_${debversion}_${debarch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "deb: $(du -h "$deb" | cut -f1) $deb"
echo "$deb"

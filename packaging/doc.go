// Package packaging holds how braid is installed rather than what it does:
// the systemd unit (braid.service), the Debian package's scripts
// (../scripts/deb.sh builds it), and the OpenWrt init script
// (openwrt/braid.init). Its tests check the unit's settings, run
// systemd-analyze on it, run braid with exactly the unit's capabilities,
// and build and inspect the package.
package packaging

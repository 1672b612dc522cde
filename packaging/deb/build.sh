#!/usr/bin/env bash
# Builds the Debian package of reelcast from a release binary, with dpkg-deb (no extra
# tools): the binary, a systemd unit, a commented /etc/reelcast/flashphoner.properties,
# the bundled sample under /var/lib/reelcast/media, the docs.
#
#   packaging/deb/build.sh [BINARY] [OUT_DIR]
#     BINARY  default: target/release/reelcast (cargo build --release -p reelcast first)
#     OUT_DIR default: target/deb
# Prints the path of the .deb it made.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-$root/target/release/reelcast}
out=${2:-$root/target/deb}
[[ -x $bin ]] || { echo "build.sh: no binary at $bin" >&2; exit 1; }

version=$("$bin" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/reelcast

install -D -m 0755 "$bin" "$pkg/usr/bin/reelcast"
strip --strip-debug "$pkg/usr/bin/reelcast" 2>/dev/null || true
install -D -m 0644 "$here/reelcast.service" "$pkg/lib/systemd/system/reelcast.service"
install -D -m 0640 "$here/flashphoner.properties" "$pkg/etc/reelcast/flashphoner.properties"
install -D -m 0644 "$root/media/sample.mp4" "$pkg/var/lib/reelcast/media/sample.mp4"
for doc in README.md docs/CONFIGURATION.md docs/OPERATIONS.md docs/REST.md docs/SECURITY.md; do
  [[ -f $root/$doc ]] && install -D -m 0644 "$root/$doc" "$pkg/usr/share/doc/reelcast/$(basename "$doc")"
done
install -D -m 0644 "$root/packaging/grafana/reelcast.json" "$pkg/usr/share/doc/reelcast/grafana/reelcast.json"

mkdir -p "$pkg/DEBIAN"
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: reelcast
Version: $version
Architecture: $arch
Maintainer: reelcast developers <reelcast@localhost>
Depends: libc6, libgcc-s1, libopus0, libssl3, libavcodec59, libavformat59, libavutil57, libswscale6, libswresample4, adduser
Section: video
Priority: optional
Homepage: https://github.com/reelcast/reelcast
Description: media server: MP4 files to browsers over WebRTC
 Plays MP4 files and S3 objects to browsers over WebRTC, speaking Flashphoner
 WCS's WebSocket protocol and REST API, and WHEP.
CONTROL
echo /etc/reelcast/flashphoner.properties > "$pkg/DEBIAN/conffiles"
install -m 0755 "$here/postinst" "$pkg/DEBIAN/postinst"
install -m 0755 "$here/postrm" "$pkg/DEBIAN/postrm"
install -m 0755 "$here/prerm" "$pkg/DEBIAN/prerm"

mkdir -p "$out"
deb="$out/reelcast_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"

#!/bin/sh
# Regenerate the vendored Workbox files from npm, so the VM itself needs no node.
#
#   sh kit/pwa/vendor.sh          # the version pinned below
#   sh kit/pwa/vendor.sh 7.4.1    # another 7.x release
#
# Copies each package's production build (build/*.prod.js, and workbox-sw's loader)
# into app/vendor/workbox-VERSION/, with Workbox's MIT license, and records the
# version in app/vendor/VERSION. sw.js names the folder in its modulePathPrefix:
# update it there after changing the version.
set -eu
VERSION="${1:-7.4.1}"
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="$HERE/app/vendor/workbox-$VERSION"
PACKAGES="workbox-sw workbox-core workbox-precaching workbox-routing workbox-strategies
workbox-background-sync"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"
for p in $PACKAGES; do
    npm pack --silent "$p@$VERSION" >/dev/null
done
rm -rf "$HERE"/app/vendor/workbox-*
mkdir -p "$OUT"
for p in $PACKAGES; do
    mkdir -p "$p"
    tar -xzf "$p-$VERSION.tgz" -C "$p" --strip-components=1
    if [ "$p" = workbox-sw ]; then
        cp "$p/build/workbox-sw.js" "$OUT/"
    else
        cp "$p/build/$p.prod.js" "$OUT/"
    fi
done
cp workbox-sw/LICENSE "$OUT/LICENSE"
echo "$VERSION" > "$HERE/app/vendor/VERSION"
ls -l "$OUT"

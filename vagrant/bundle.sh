#!/usr/bin/env bash
# make bundle: everything an install needs, in one folder, for a room without a network.
#   vagrant/bundle.sh [FOLDER]     (default ./bundle; `make setup` then uses it offline)
#
# FOLDER/wheels/  the wheels of requirements.lock (built here for any sdist), so
#                 `pip install --no-index --find-links FOLDER/wheels` needs no index;
# FOLDER/debs/    the Debian packages of vagrant/packages.sh and everything they depend
#                 on (Chromium among them), made a flat apt repository (a Packages
#                 index), so apt installs from it alone;
# FOLDER/MANIFEST what is in it, and for which architecture and lock.
#
# Build it on a Debian 12 machine of the learners' architecture (amd64 for most
# laptops; arm64 for Apple Silicon VMs). Copy it next to the repository (or set
# EDGELAB_BUNDLE) on each machine, or into the shared folder the VMs are made from:
# `make setup` (and `vagrant up`) then install from it with no download.
# Running it again only fetches what is missing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$(realpath -m "${1:-$ROOT/bundle}")
. "$ROOT/vagrant/packages.sh"
mkdir -p "$OUT/wheels" "$OUT/debs"

echo "1/2 wheels of requirements.lock -> $OUT/wheels"
# (--find-links: wheels already in the folder are used, not fetched or built again)
"$ROOT/.venv/bin/pip" wheel -q --disable-pip-version-check --find-links "$OUT/wheels" \
  -r "$ROOT/requirements.lock" -w "$OUT/wheels"

echo "2/2 Debian packages and their dependencies -> $OUT/debs"
apt-get update -qq
# Every package the list needs, recursively, as apt resolves it (virtual names are
# printed in <brackets> and left out: the packages that provide them are listed).
needed=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances $PACKAGES | grep '^[a-z0-9]' | sort -u)
# Only the .debs not already there ('URI' FILE SIZE HASH per package).
fetch=$(apt-get download --print-uris $needed | while read -r _ file _ _; do
  [ -f "$OUT/debs/$file" ] || echo "${file%%_*}"
done)
if [ -n "$fetch" ] || [ ! -f "$OUT/debs/Packages" ]; then
  [ -z "$fetch" ] || (cd "$OUT/debs" && apt-get download -qq $fetch 2>&1 | grep -v "^W:" || true)
  (cd "$OUT/debs" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null > Packages)
fi

{
  echo "architecture: $(dpkg --print-architecture)"
  echo "lock: $(sha256sum "$ROOT/requirements.lock" | cut -d' ' -f1)"
  echo "wheels: $(ls "$OUT/wheels" | wc -l)"
  echo "debs: $(ls "$OUT/debs"/*.deb | wc -l)"
  echo "size: $(du -sh "$OUT" | cut -f1)"
} > "$OUT/MANIFEST"
cat "$OUT/MANIFEST"

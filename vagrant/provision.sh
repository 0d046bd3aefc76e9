#!/usr/bin/env bash
# Edge Lab's one install script, for Debian 12: the Vagrant VM and bare Linux alike.
#
# Installs Debian's packages (Mininet and the tools its worlds use, Mosquitto,
# nginx for a benchmark), makes the venv .venv from Debian's /usr/bin/python3 with
# a link to Debian's `mininet` module only (not --system-site-packages, which would
# drag in Debian's other, older Python packages), and installs requirements.lock.
# Safe to run again: each step is skipped when already done, so a second run takes
# about a second.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"

if [ "$(uname -s)" != "Linux" ]; then
  echo "Edge Lab runs on Linux (Mininet needs network namespaces). On macOS or Windows, use the Vagrant VM: vagrant up" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "Edge Lab installs Debian packages and its worlds need network namespaces: run as root (sudo make lab, sudo make test)." >&2
  exit 1
fi

# 1. Debian packages, only those missing.
PACKAGES="mininet iproute2 iputils-ping iperf curl ethtool procps util-linux
  mosquitto mosquitto-clients nginx-light python3 python3-venv python3-dev git make
  wrk vagrant chromium"  # wrk: the PoP benchmark; vagrant: to validate the Vagrantfile;
  # chromium: the browser the tests run every chapter in (Playwright drives it)
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  # The packages start a system-wide broker and web server where systemd runs;
  # the labs start their own, on world hosts.
  if [ -d /run/systemd/system ]; then
    systemctl disable --now mosquitto nginx >/dev/null 2>&1 || true
  fi
fi

# 2. The venv, seeing Debian's Mininet and nothing else of Debian's Python.
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV"
  /usr/bin/python3 -m venv "$VENV"
fi
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
ln -sfn /usr/lib/python3/dist-packages/mininet "$SITE/mininet"
echo "$ROOT" > "$SITE/edgelab.pth"  # `import kit` from any folder, notebooks included

# 3. The locked Python dependencies, when the lock changed since the last install.
STAMP="$VENV/.requirements.lock"
if ! cmp -s "$ROOT/requirements.lock" "$STAMP"; then
  echo "installing Python packages from requirements.lock (a few minutes the first time)"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/requirements.lock"
  cp "$ROOT/requirements.lock" "$STAMP"
fi

# 4. JupyterLab's settings for the labs: Markdown (the start page) opens rendered.
SETTINGS="$VENV/share/jupyter/lab/settings"
mkdir -p "$SETTINGS"
cmp -s "$ROOT/vagrant/overrides.json" "$SETTINGS/overrides.json" || cp "$ROOT/vagrant/overrides.json" "$SETTINGS/overrides.json"

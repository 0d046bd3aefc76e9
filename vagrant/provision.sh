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

# 1. Debian packages, only those missing. With an offline bundle (`make bundle`:
# BUNDLE, default ./bundle), from its folder of .debs and nothing else.
. "$ROOT/vagrant/packages.sh"
BUNDLE=${EDGELAB_BUNDLE:-$ROOT/bundle}
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing"
  if [ -f "$BUNDLE/debs/Packages" ]; then
    # The bundle is a flat repository: apt reads only it, offline.
    LIST=$(mktemp)
    echo "deb [trusted=yes] file:$BUNDLE/debs ./" > "$LIST"
    APT=(-o "Dir::Etc::sourcelist=$LIST" -o "Dir::Etc::sourceparts=-" -o "APT::Get::List-Cleanup=0")
    apt-get "${APT[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive apt-get "${APT[@]}" install -y -qq --no-install-recommends $missing >/dev/null
    rm -f "$LIST"
  else
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
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
  if [ -d "$BUNDLE/wheels" ]; then  # offline: the bundle's wheels and nothing else
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-index \
      --find-links "$BUNDLE/wheels" -r "$ROOT/requirements.lock"
  else
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/requirements.lock"
  fi
  cp "$ROOT/requirements.lock" "$STAMP"
fi

# 4. JupyterLab's settings for the labs: Markdown (the start page) opens rendered.
SETTINGS="$VENV/share/jupyter/lab/settings"
mkdir -p "$SETTINGS"
cmp -s "$ROOT/vagrant/overrides.json" "$SETTINGS/overrides.json" || cp "$ROOT/vagrant/overrides.json" "$SETTINGS/overrides.json"
# nbgrader's instructor tools (formgrader, course list, create assignment) are not shown
# in a learner's Lab; the Assignments tab stays, and the nbgrader commands work as before.
LABCONFIG="$VENV/etc/jupyter/labconfig"
mkdir -p "$LABCONFIG"
cmp -s "$ROOT/vagrant/page_config.json" "$LABCONFIG/page_config.json" || cp "$ROOT/vagrant/page_config.json" "$LABCONFIG/page_config.json"

#!/usr/bin/env bash
# Start JupyterLab on the labs, token-protected, and print the URL with its token.
#   vagrant/lab.sh [--ip ADDRESS]    (default 127.0.0.1; the VM listens on 0.0.0.0
#                                     behind a port forwarded to the host's 127.0.0.1)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IP=127.0.0.1
[ "${1:-}" = "--ip" ] && IP=$2
if [ "$(id -u)" != 0 ]; then
  echo "The labs build Mininet worlds, which need root: run \`sudo make lab\`." >&2
  exit 1
fi
TOKEN_FILE=/etc/edgelab/token
# The token reaches Jupyter in a root-only config file: on the command line,
# `ps` would show it to every user of the machine.
CONFIG=/etc/edgelab/jupyter_server_config.json
if [ ! -s "$TOKEN_FILE" ]; then
  mkdir -p /etc/edgelab
  (umask 077; "$ROOT/.venv/bin/python" -c 'import secrets; print(secrets.token_hex(16))' > "$TOKEN_FILE")
fi
TOKEN=$(cat "$TOKEN_FILE")
rm -f "$CONFIG"
# Terminals run bash with vagrant/terminal.bashrc: the user's ~/.bashrc, then the
# venv first on the PATH (a login shell, JupyterLab's default when it runs as a
# service, would reset PATH from /etc/profile and lose the venv's python).
SHELL_RC="$ROOT/vagrant/terminal.bashrc"
# The token goes to Python in the environment, never on a command line. The proxy
# (kit/load/ui.py) puts a running load test's Locust UI at /locust/.
(umask 077; EDGELAB_TOKEN="$TOKEN" "$ROOT/.venv/bin/python" - "$SHELL_RC" > "$CONFIG" <<'PY'
import json, os, sys
from kit.load.ui import jupyter_proxy_config
shell = {"shell_command": ["/bin/bash", "--rcfile", sys.argv[1]]}
config = {"IdentityProvider": {"token": os.environ["EDGELAB_TOKEN"]}}
config["ServerApp"] = {"terminado_settings": shell}
print(json.dumps({**config, **jupyter_proxy_config()}))
PY
)
echo
if [ -t 1 ]; then
  echo "Edge Lab: open http://127.0.0.1:8888/lab?token=$TOKEN"
else  # a service: its output goes to the system log
  echo "Edge Lab: open http://127.0.0.1:8888/lab?token=TOKEN, TOKEN in $TOKEN_FILE (root only)"
fi
echo
# The start page: the chapter map and this machine's state, opened first (rendered:
# vagrant/overrides.json, installed by provision.sh, makes Markdown open as a preview).
"$ROOT/.venv/bin/python" -m kit start-page "$ROOT/labs/START.md" >/dev/null
cd "$ROOT/labs"
exec "$ROOT/.venv/bin/jupyter" lab --ip "$IP" --port 8888 --no-browser --allow-root \
  --ServerApp.root_dir="$ROOT/labs" --LabApp.default_url=/lab/tree/START.md \
  --config="$CONFIG"

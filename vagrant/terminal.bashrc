# The shell of JupyterLab's terminals (vagrant/lab.sh sets it): the user's own
# ~/.bashrc first, then Edge Lab's venv first on the PATH, so `python` there is the
# one the labs run with (`python -m kit.nb.reset 02` works from the labs folder).
# shellcheck disable=SC1090
[ -f ~/.bashrc ] && . ~/.bashrc
export PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin:$PATH"

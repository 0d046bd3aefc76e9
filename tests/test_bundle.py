"""The offline classroom (vagrant/bundle.sh, `make bundle`): an install that needs no network.

The bundle is built (or brought up to date: only what is missing is fetched)
in a cache folder, `/var/cache/edgelab/bundle` unless `EDGELAB_BUNDLE_CACHE`
says otherwise; the first build downloads about 700 MB and takes minutes. Then
both halves of an install run in a network namespace with no interface but
loopback (`unshare -n`), so nothing can come from the network:

- the lock's wheels go into a new venv from Debian's python3, and the kit's
  heaviest imports work;
- apt, given an empty list of installed packages (a fresh machine, as apt sees
  it) and the bundle as its only source, resolves every package of
  `vagrant/packages.sh` and all their dependencies (a simulated install: this
  machine's own packages are not touched).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("EDGELAB_BUNDLE_CACHE", "/var/cache/edgelab/bundle"))
IMPORTS = "import aiohttp, jupyterlab, nbgrader, onnxruntime, playwright, pycrdt, paho"


def offline(command: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run a shell command with no network at all (a new, empty network namespace)."""
    return subprocess.run(
        ["unshare", "-n", "bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def bundle():
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    built = subprocess.run(
        ["bash", str(ROOT / "vagrant" / "bundle.sh"), str(CACHE)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    return CACHE


@pytest.mark.timeout(3600)  # the first build downloads the bundle
def test_the_manifest_is_for_this_lock(bundle):
    lock = hashlib.sha256((ROOT / "requirements.lock").read_bytes()).hexdigest()
    manifest = (bundle / "MANIFEST").read_text()
    assert f"lock: {lock}" in manifest and "architecture:" in manifest


@pytest.mark.timeout(900)
def test_the_wheels_install_into_a_fresh_venv_with_no_network(bundle, tmp_path):
    venv = tmp_path / "venv"
    done = offline(
        f"/usr/bin/python3 -m venv {venv} && {venv}/bin/pip install -q --no-index "
        f"--disable-pip-version-check --find-links {bundle}/wheels -r {ROOT}/requirements.lock"
        f" && {venv}/bin/python -W ignore -c '{IMPORTS}' && {venv}/bin/locust --version"
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


def test_apt_resolves_every_package_from_the_bundle_alone(bundle, tmp_path):
    for folder in ("lists/partial", "cache/archives/partial"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "status").write_text("")  # nothing installed: a fresh machine
    (tmp_path / "sources.list").write_text(f"deb [trusted=yes] file:{bundle}/debs ./\n")
    options = [
        f"-o Dir::Etc::sourcelist={tmp_path}/sources.list",
        "-o Dir::Etc::sourceparts=-",
        f"-o Dir::State::Lists={tmp_path}/lists",
        f"-o Dir::State::status={tmp_path}/status",
        f"-o Dir::Cache={tmp_path}/cache",
        "-o Debug::NoLocking=1",
    ]
    apt = "apt-get " + " ".join(options)
    packages = f". {ROOT}/vagrant/packages.sh && echo $PACKAGES"
    done = offline(
        f"{apt} update -qq && {apt} -s install --no-install-recommends $({packages})", 120
    )
    assert done.returncode == 0 and "E:" not in done.stderr, done.stdout[-1500:] + done.stderr
    configured = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("Conf ")}
    listed = subprocess.run(
        ["bash", "-c", packages], capture_output=True, text=True, check=True
    ).stdout.split()
    assert set(listed) <= configured, set(listed) - configured

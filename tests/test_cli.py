"""`python -m kit` as a learner types it, and the Vagrantfile as Vagrant reads it."""

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kit.net import registry

ROOT = Path(__file__).resolve().parents[1]


def kit(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "kit", *args], cwd=ROOT, capture_output=True, text=True, **kw
    )


def test_doctor_says_a_lab_can_run_and_which_link_mechanism():
    r = kit("doctor")
    assert r.returncode == 0, r.stdout
    assert "A lab can run here." in r.stdout
    links = next(line for line in r.stdout.splitlines() if " links " in line)
    assert "delayline" in links or "netem" in links
    assert "Mosquitto" in r.stdout


def test_doctor_fails_when_forced_to_a_mechanism_the_kernel_lacks():
    from kit.net.links import netem_available

    if netem_available()[0]:
        pytest.skip("this kernel has netem: nothing to refuse")
    r = kit("doctor", env={**os.environ, "EDGELAB_LINKS": "netem"})
    assert r.returncode == 1
    assert "FAIL" in r.stdout and "no netem" in r.stdout


@pytest.mark.timing
def test_verify_prints_configured_vs_measured_and_passes():
    r = kit("verify", timeout=300)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "configured" in r.stdout and "err_p99" in r.stdout
    assert "r-virginia" in r.stdout and "user-tokyo" in r.stdout
    assert "within tolerance" in r.stdout


def test_up_shows_the_hosts_and_ctrl_c_stops_everything():
    p = subprocess.Popen(
        [sys.executable, "-m", "kit", "up"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    for line in p.stdout:
        lines.append(line)
        if "Ctrl-C stops the world" in line:
            break
    text = "".join(lines)
    assert "pop-tokyo" in text and "10." in text and "router" in text
    ours = [r for r in registry.load_records() if r.owner_pid == p.pid]
    assert len(ours) == 1
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=30) == 0
    p.stdout.close()
    assert registry.world_processes(ours[0]) == []
    assert not ours[0].path.exists()


def test_clean_says_what_it_removed():
    r = kit("clean")  # other worlds on this machine may be live, or left by a crash
    assert r.returncode == 0
    assert re.search(r"^(nothing to clean|cleaned \d+ worlds?)$", r.stdout, re.MULTILINE), r.stdout


def validate(vagrantfile: Path) -> subprocess.CompletedProcess:
    """`vagrant validate` without a provider plugin (Debian's vagrant has Docker's built in)."""
    env = {
        **os.environ,
        "VAGRANT_DEFAULT_PROVIDER": "docker",
        "VAGRANT_HOME": str(vagrantfile.parent / ".vagrant.d"),
    }
    return subprocess.run(
        ["vagrant", "validate", "-p"],
        cwd=vagrantfile.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_vagrantfile_validates(tmp_path):
    shutil.copy(ROOT / "Vagrantfile", tmp_path / "Vagrantfile")
    r = validate(tmp_path / "Vagrantfile")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "validated successfully" in r.stdout
    # The same check catches a broken file.
    broken = (ROOT / "Vagrantfile").read_text().replace("config.vm.box =", "config.vm.boxx =")
    (tmp_path / "Vagrantfile").write_text(broken)
    assert validate(tmp_path / "Vagrantfile").returncode != 0


def test_the_vagrantfile_forwards_only_localhost_and_uses_the_install_script():
    text = (ROOT / "Vagrantfile").read_text()
    assert 'host_ip: "127.0.0.1"' in text
    networks = [line for line in text.splitlines() if "config.vm.network" in line]
    assert networks and all("forwarded_port" in line for line in networks)
    assert "vagrant/provision.sh" in text

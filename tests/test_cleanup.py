"""Nothing left behind: crashed owners, `kit clean`, coexisting worlds, clear refusals."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kit import cli
from kit.net import World, WorldError, registry
from kit.net.topology import parse_world

ROOT = Path(__file__).resolve().parents[1]

# A world whose owner a test kills: one service, and a stray process a learner
# started from a host shell with nohup (not recorded by pid: only its mark and
# namespace say it belongs to the world; without nohup the shell's hangup ends it).
CRASHING_OWNER = """
import time
from kit.net import World
from tests.test_cleanup import small_world
w = World(small_world("crashy")).start()
w.host("user-a").cmd("nohup sleep 600 >/dev/null 2>&1 &")
w.start_service("pop-a", ["python", "-m", "http.server", "8000"],
                health_url="http://127.0.0.1:8000/")
print(w.record.id, flush=True)
time.sleep(600)
"""


def small_world(name: str) -> dict:
    """Two regions, one PoP and one user: a world that starts in a fraction of a second."""
    return {
        "name": name,
        "regions": {"a": {"city": "A", "country": "DE"}, "b": {"city": "B", "country": "JP"}},
        "backbone": [{"a": "a", "b": "b", "rtt_ms": 20}],
        "nodes": {
            "pop-a": {"kind": "pop", "region": "a"},
            "user-a": {"kind": "client", "region": "a"},
            "user-b": {"kind": "client", "region": "b"},
        },
    }


def unmarked_namespaces() -> set[int]:
    """Namespaces holding a process that no world marked as its own.

    (The kernel reuses a freed namespace's inode number at once, so a number from a
    dead world's record may already belong to a new world: its processes carry the
    new world's mark.)
    """
    inodes = set()
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                env = Path(f"/proc/{p}/environ").read_bytes()
            except OSError:
                continue
            if registry.MARK.encode() not in env:
                inodes.add(registry.netns_inode(int(p)))
    return inodes


def crash_a_world() -> registry.Record:
    """Start a world in a child process, SIGKILL the child, return the world's record."""
    owner = subprocess.Popen(
        [sys.executable, "-c", CRASHING_OWNER], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    wid = owner.stdout.readline().strip()
    assert wid, "the owner did not start its world"
    rec = next(r for r in registry.load_records() if r.id == wid)
    assert registry.world_processes(rec), "the world should be running"
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    owner.stdout.close()
    return rec


def assert_gone(rec: registry.Record) -> None:
    assert registry.world_processes(rec) == []
    assert not set(rec.netns) & unmarked_namespaces(), "a namespace of the world is still alive"
    assert not Path(rec.scratch).exists()
    assert not rec.path.exists()


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # it ended meanwhile
        return b""


def test_kit_clean_removes_exactly_what_a_killed_owner_left():
    rec = crash_a_world()

    # The dead owner's shells, delay line and service died with it (PR_SET_PDEATHSIG);
    # the learner's stray `sleep` did not, and keeps a namespace alive.
    def only_sleep_left() -> list[int]:
        stray = registry.world_processes(rec)
        return stray if all(b"sleep" in cmdline(p) for p in stray) else []

    # imported here: the owners this module starts import it as tests.test_cleanup
    from test_services_support import wait_until

    wait_until(only_sleep_left, 10)  # a busy machine takes a while to end the rest
    stray = only_sleep_left()
    assert stray, [cmdline(p) for p in registry.world_processes(rec)]
    assert rec.id in [r.id for r in registry.leftovers()]
    bystander = subprocess.Popen(["sleep", "600"])  # ours, unmarked: must survive
    try:
        out = subprocess.run(
            [sys.executable, "-m", "kit", "clean"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"removed world {rec.id}" in out
        assert_gone(rec)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_the_next_world_heals_a_crashed_one():
    rec = crash_a_world()
    with World(small_world("healer")) as w:
        assert_gone(rec)
        assert len(w.ping("user-a", "user-b", 3)) == 3


def test_worlds_coexist_and_a_rerun_replaces_the_same_world(world):
    first = World(small_world("second")).start()
    first_record = first.record
    assert world.running and first.running
    assert len(first.ping("user-a", "pop-a", 3)) == 3
    assert len(world.ping("user-tokyo", "pop-tokyo", 3)) == 3  # the session world is unharmed
    with pytest.warns(UserWarning, match="one world per name"):
        rerun = World(small_world("second")).start()  # a notebook cell run again
    try:
        assert not first.running and rerun.running
        assert_gone(first_record)
        assert len(rerun.ping("user-a", "pop-a", 3)) == 3
    finally:
        rerun.stop()


def test_stop_leaves_nothing_and_is_safe_twice():
    w = World(small_world("tidy")).start()
    w.fail_node("user-b")
    w.host("user-a").cmd("nohup sleep 600 >/dev/null 2>&1 &")
    rec = w.record
    w.stop()
    assert_gone(rec)
    w.stop()
    with pytest.raises(WorldError, match="not running"):
        w.ping("user-a", "user-b")
    w.start()  # the same object starts again, fresh
    try:
        assert w.failed == set() and len(w.ping("user-a", "user-b", 3)) == 3
    finally:
        w.stop()


def test_a_bad_description_gives_its_error_before_anything_starts():
    bad = small_world("bad")
    bad["nodes"]["pop-a"]["region"] = "c"
    with pytest.raises(Exception, match="nodes.pop-a.region: unknown region 'c'; known: a, b"):
        World(bad)
    assert parse_world(small_world("good")).name == "good"


def test_without_root_the_refusal_is_a_sentence(monkeypatch, capsys):
    # The process stays root, but the kit sees another user: the test does not depend
    # on whether another user could read the clone (under /root it could not).
    monkeypatch.setattr(os, "geteuid", lambda: 65534)
    assert cli.main(["up"]) == 2
    said = capsys.readouterr().err
    assert "needs Linux and root" in said and "sudo" in said
    with pytest.raises(WorldError, match="Edge Lab's worlds need root") as refusal:
        World(small_world("not-root")).start()
    assert "sudo make lab" in str(refusal.value)


def test_a_world_stops_when_its_process_exits():
    script = (
        "from kit.net import World\n"
        "from tests.test_cleanup import small_world\n"
        "w = World(small_world('leaver')).start()\n"
        "print(w.record.id, flush=True)\n"  # and exit without calling stop()
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    wid = out.strip()
    assert wid.startswith("leaver-")
    assert wid not in [r.id for r in registry.load_records()]
    assert not Path(f"/tmp/edgelab-{wid}").exists()

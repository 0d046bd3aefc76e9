"""What each world created, written down so that a crash leaves nothing behind.

A world's hosts are Mininet nodes: processes in network namespaces of their own.
Nothing the kit creates lives in the root namespace (no bridges, no named
namespaces: every link is a veth pair between two hosts), so a world is exactly
the set of processes running in its namespaces. When they are gone, the kernel
frees the namespaces and every interface in them.

Each world therefore records, in ``STATE_DIR/<id>.json``:

- its owner (pid and start time: a pid alone can be reused),
- the network namespaces of its hosts (their ``/proc/PID/ns/net`` inodes),
- the processes it started (pid and start time),
- its scratch folder (service logs).

Every process the kit starts in a world carries ``EDGELAB_WORLD=<id>`` in its
environment, and so does whatever those processes start (a learner's ``cmd('x
&')`` included). ``reap`` kills a process only if it is one the record names
(same pid and start time), or if it both lives in one of the recorded namespaces
and carries the world's mark. It never touches anything else: no ``mn -c``, no
killing by name.

``clean()`` reaps every world whose owner is gone. A new world calls it first,
so a learner whose kernel died just runs the notebook again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_DIR = Path(os.environ.get("EDGELAB_STATE", "/run/edgelab"))
MARK = "EDGELAB_WORLD"


def start_time(pid: int) -> int | None:
    """The start time of a process in clock ticks since boot (None if gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after it are plain.
    return int(stat.rsplit(")", 1)[1].split()[19])


def running(pid: int) -> bool:
    """True while a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def alive(pid: int, started: int) -> bool:
    """The process that had this pid and start time is still running (zombies are dead)."""
    return start_time(pid) == started and running(pid)


def _marked(pid: int, world: str) -> bool:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{MARK}={world}".encode() in env.split(b"\0")


@dataclass
class Record:
    """What one world created: enough to remove all of it after a crash."""

    id: str
    name: str
    owner_pid: int
    owner_start: int
    scratch: str
    netns: list[int] = field(default_factory=list)
    procs: list[tuple[int, int, str]] = field(default_factory=list)  # pid, start, what

    @classmethod
    def create(cls, name: str) -> Record:
        wid = f"{name}-{uuid.uuid4().hex[:8]}"
        scratch = Path("/tmp") / f"edgelab-{wid}"
        scratch.mkdir(mode=0o755)
        pid = os.getpid()
        rec = cls(wid, name, pid, start_time(pid) or 0, str(scratch))
        rec.save()
        return rec

    @property
    def path(self) -> Path:
        return STATE_DIR / f"{self.id}.json"

    def save(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(self.path)  # atomic: a crash never leaves half a record

    def add_process(self, pid: int, what: str, host_shell: bool = False) -> None:
        """Record a process; a host's shell also records the host's namespace."""
        started = start_time(pid)
        if started is not None:
            self.procs.append((pid, started, what))
        if host_shell:
            ns = netns_inode(pid)
            if ns is not None and ns not in self.netns and ns != netns_inode(os.getpid()):
                self.netns.append(ns)
        self.save()

    def owner_alive(self) -> bool:
        return alive(self.owner_pid, self.owner_start)


def load_records() -> list[Record]:
    records = []
    for path in sorted(STATE_DIR.glob("*.json")) if STATE_DIR.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            data["procs"] = [tuple(p) for p in data.get("procs", [])]
            records.append(Record(**data))
        except (OSError, ValueError, TypeError):
            path.unlink(missing_ok=True)  # an unreadable record names nothing we could reap
    return records


def world_processes(rec: Record) -> list[int]:
    """Pids of the live processes that belong to a world (see the module docstring)."""
    me = os.getpid()
    pids = {pid for pid, started, _ in rec.procs if alive(pid, started)}
    namespaces = set(rec.netns) - {netns_inode(me)}  # never our own namespace
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            pid = int(entry)
            if netns_inode(pid) in namespaces and _marked(pid, rec.id):
                pids.add(pid)
    pids.discard(me)
    return sorted(pids)


def reap(rec: Record, timeout: float = 3.0) -> list[int]:
    """Kill every process of a world, remove its scratch folder and its record."""
    victims = world_processes(rec)
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(running(p) for p in victims):
        _collect_zombies(victims)
        time.sleep(0.01)
    shutil.rmtree(rec.scratch, ignore_errors=True)
    rec.path.unlink(missing_ok=True)
    try:
        STATE_DIR.rmdir()  # only when no other world is recorded
    except OSError:
        pass
    return victims


def _collect_zombies(pids: list[int]) -> None:
    """Wait for those of the killed processes that are our own children."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def clean() -> list[tuple[str, int]]:
    """Remove every world whose owner process is gone: [(world id, processes killed)]."""
    return [(rec.id, len(reap(rec))) for rec in load_records() if not rec.owner_alive()]


def leftovers() -> list[Record]:
    """Records of worlds whose owner is gone (what ``clean`` would remove)."""
    return [rec for rec in load_records() if not rec.owner_alive()]

"""A PoP's handler workers as processes: their priority, and that they end with the PoP.

These start real worker processes (`python -m kit.runtime.worker`) from this test's
own event loop, with no world: what is tested is the process, not the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from kit.services.workers import SPARE_NICE, Spares, Worker
from tests.test_services_support import wait_until

ROOT = Path(__file__).resolve().parent.parent


def priority(pid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, pid)


def test_a_spare_taken_while_it_starts_gets_normal_priority_at_once():
    """A deploy that takes the spare waits for it: the spare must not stay behind
    every busy process (nice 10) until it is ready."""

    async def scenario() -> tuple[int, int, int]:
        spares = Spares(64)
        spares.prepare()
        await asyncio.sleep(0)  # the spare's process is forked, at low priority
        assert spares.next is not None
        spare = spares.next[0]
        starting = priority(spare.proc.pid)
        taking = asyncio.create_task(spares.take())
        await asyncio.sleep(0)  # take() has run up to its wait for the start
        assert not taking.done(), "the spare was ready too soon to test this"
        while_starting = priority(spare.proc.pid)
        worker = await taking
        await spares.ready()  # the next spare, started after the take
        assert spares.next is not None
        next_spare = priority(spares.next[0].proc.pid)
        worker.kill("test over")
        await spares.close()
        return starting, while_starting, next_spare

    starting, while_starting, next_spare = asyncio.run(scenario())
    assert starting == SPARE_NICE
    assert while_starting == 0
    assert next_spare == SPARE_NICE


PARENT = textwrap.dedent(
    """
    import asyncio
    from kit.runtime.wire import write_message
    from kit.services.workers import Worker

    async def main():
        worker = await Worker(64).start()
        # a handler whose loading never ends: the worker never reads its socket again
        message = {"t": "load", "source": "while True:\\n    pass\\n", "config": {},
                   "pop": "test", "origin": "http://127.0.0.1:9", "matcher": None,
                   "services": {}}
        write_message(worker.writer, message)
        await worker.writer.drain()
        print(worker.proc.pid, flush=True)
        await asyncio.sleep(120)

    asyncio.run(main())
    """
)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; only its parent's reaping is left


def test_a_busy_worker_ends_when_its_pop_is_killed():
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    worker_pid = None
    try:
        worker_pid = int(parent.stdout.readline())
        assert alive(worker_pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert wait_until(lambda: not alive(worker_pid), 10), "the worker outlived its PoP"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if worker_pid and alive(worker_pid):  # leave nothing behind, even on failure
            os.kill(worker_pid, signal.SIGKILL)


def test_killing_a_worker_twice_leaves_other_files_open():
    """Evicted, then retired: a second kill must not close a descriptor that took the
    number of the worker's own (the PoP's sockets were cut that way)."""

    async def scenario() -> None:
        worker = await Worker(64).start()
        number = worker.dump_fd
        worker.kill("evicted")
        reader, writer = os.pipe()  # the lowest free numbers: the dump's is one of them
        try:
            assert number in (reader, writer), "the test needs the freed number reused"
            worker.kill("retired")
            os.fstat(reader), os.fstat(writer)  # raises if the second kill closed one
        finally:
            for fd in (reader, writer):
                with contextlib.suppress(OSError):
                    os.close(fd)

    asyncio.run(scenario())

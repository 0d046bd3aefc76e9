"""Starting a service on this machine, outside any world: for tests and benchmarks.

    origin = LocalService("origin", workdir=tmp)             # any free port on 127.0.0.1
    pop = LocalService("pop", "--pop", "x", "--origin", origin.url, workdir=tmp)
    call(pop.control, "GET", protocol.METRICS)               # its control socket
    pop.stop()

A `LocalService` is `python -m kit.services.NAME --host 127.0.0.1 --port 0`
with its control socket and its log in `workdir`. It counts as started when
the service logs `{"event": "listening", "port": N}`, which it does once both
its TCP port and its control socket listen; a service that exits first raises
`RuntimeError` with its log. `prefix` runs it under another command (e.g.
`taskset -c 0` to pin it to a core) and `code` is the folder `kit` is imported
from (a benchmark may run an older version of the kit beside this one).

On a world's hosts services are started by `kit.net.procs.Service` instead,
inside the host's network namespace.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kit.net.procs import stop_process

REPO = Path(__file__).resolve().parents[2]


class LocalService:
    """One `python -m kit.services.NAME` process on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        name: str,
        *args: str,
        workdir: str | Path,
        prefix: Sequence[str] = (),
        code: Path = REPO,
        timeout: float = 20.0,
    ) -> None:
        stem = Path(workdir) / f"{name}-{time.monotonic_ns()}"
        self.log_path = stem.with_suffix(".log")
        self.control = f"unix:{stem.with_suffix('.sock')}"
        command = [sys.executable, "-m", f"kit.services.{name}"]
        command += ["--host", "127.0.0.1", "--port", "0", "--log-sample", "0"]
        command += ["--unix", self.control.removeprefix("unix:"), *args]
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [*prefix, *command],
                cwd=code,  # `python -m` imports `kit` from here first
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.port = self._wait_for_port(timeout)
        self.url = f"http://127.0.0.1:{self.port}"

    def _wait_for_port(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listening = [e for e in self.logs() if e.get("event") == "listening"]
            if listening:
                return listening[0]["port"]
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited:\n{self.log_path.read_text()}")
            time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"service did not start:\n{self.log_path.read_text()}")

    def logs(self) -> list[dict[str, Any]]:
        """The service's JSON log lines so far."""
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stop(self) -> None:
        stop_process(self.process, 10)

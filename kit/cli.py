"""``python -m kit``: doctor, start-page, up, verify, clean.

- ``doctor``  can a lab run here? Root, Mininet, the link mechanism and why,
  Mosquitto, the JupyterLab port, worlds running, leftovers of crashed worlds.
  Exit 0 only when a lab can run.
- ``start-page PATH``  write the page JupyterLab opens on (``kit.nb.chapters``):
  the chapter map and what ``doctor`` finds.
- ``up``      start the default world and keep it until Ctrl-C.
- ``verify``  start the default world, measure the RTT of every user-to-server
  pair and every backbone link, print configured vs measured; exit 1 if any
  pair's p50 error is over 1 ms or its p99 error over 3 ms. A pair out of
  tolerance is measured once more before it counts: a moment when the machine
  is busy elsewhere stretches a few echoes of whatever is measured then, while a
  link whose delay is wrong is wrong both times.
- ``clean``   remove whatever crashed worlds left behind (only those).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path


def _table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines.append("  ".join("-" * widths[c] for c in columns))
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def machine_state() -> list[tuple[str, bool, str]]:
    """What a lab needs and whether this machine has it: (what, ok, detail) rows."""
    checks: list[tuple[str, bool, str]] = []
    linux = sys.platform.startswith("linux")
    checks.append(("Linux", linux, sys.platform))
    root = linux and os.geteuid() == 0
    checks.append(("root", root, "yes" if root else "run as root: sudo make lab"))
    try:
        import mininet.net  # noqa: F401

        checks.append(("Mininet", True, os.path.dirname(mininet.net.__file__)))
    except ImportError as e:
        checks.append(("Mininet", False, f"{e}: run `sudo make setup`"))
    for tool in ("mnexec", "ip", "tc", "unshare", "curl", "ping"):
        path = shutil.which(tool)
        checks.append((tool, bool(path), path or "missing: run `sudo make setup`"))
    mosquitto = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    checks.append(("Mosquitto", bool(mosquitto), mosquitto or "missing: run `sudo make setup`"))
    if root:
        from kit.net.links import probe

        try:
            choice = probe()
            checks.append(("links", True, f"{choice.mechanism}: {choice.why}"))
        except (RuntimeError, ValueError) as e:
            checks.append(("links", False, str(e)))
    port_free = _port_free(8888)
    checks.append(("port 8888", True, "free" if port_free else "in use (JupyterLab running? fine)"))
    if root:
        from kit.net.registry import leftovers, load_records

        left = leftovers()
        live = [r.id for r in load_records() if r not in left]
        checks.append(("worlds running", True, ", ".join(live) or "none"))
        detail = ", ".join(r.id for r in left) or "none"
        checks.append(
            ("leftovers", not left, detail + ("  -> python -m kit clean" if left else ""))
        )
    return checks


def doctor() -> int:
    """Print what a lab needs and whether this machine has it."""
    checks = machine_state()
    width = max(len(c[0]) for c in checks)
    for what, ok, detail in checks:
        print(f"{'ok  ' if ok else 'FAIL'}  {what.ljust(width)}  {detail}")
    ready = all(ok for _, ok, _ in checks)
    print("\nA lab can run here." if ready else "\nA lab cannot run here yet: fix the FAIL lines.")
    return 0 if ready else 1


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def up() -> int:
    """Start the default world and keep it until Ctrl-C."""
    from kit.net import World

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        with World().start(progress=print) as world:
            print(_table(world.table(), ["node", "kind", "region", "city", "address"]))
            print(
                f"\nanycast {world.spec.anycast}; links: {world.mechanism}. "
                "Ctrl-C stops the world.",
                flush=True,
            )
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("\nthe world is stopped")
    return 0


def verify() -> int:
    """Measure every pair of the default world against its configured RTT."""
    from kit.net import World, fidelity

    with World().start(progress=print) as world:
        print(f"measuring every pair ({world.mechanism}) ...", flush=True)
        pairs = fidelity.measure(world, fidelity.verify_pairs(world))
        first_bad = [p for p in pairs if not p.ok]
        if first_bad:
            print(f"measuring again: {_names(first_bad)}", flush=True)
            again = fidelity.measure(world, [(p.src, p.dst) for p in first_bad])
            retried = {(p.src, p.dst): p for p in again}
            pairs = [retried.get((p.src, p.dst), p) for p in pairs]
    rows = [p.row() for p in pairs]
    print(_table(rows, ["from", "to", "configured", "p50", "p99", "err_p50", "err_p99", "lost"]))
    worst50 = max(abs(p.error(0.5) or 0) for p in pairs)
    worst99 = max(abs(p.error(0.99) or 0) for p in pairs)
    print(
        f"\nworst p50 error {worst50:.2f} ms (limit {fidelity.P50_LIMIT_MS}), "
        f"worst p99 error {worst99:.2f} ms (limit {fidelity.P99_LIMIT_MS})"
    )
    if first_bad:
        print(f"{len(first_bad)} pairs were out of tolerance at first and measured again")
    bad = [p for p in pairs if not p.ok]
    if bad:
        print(f"{len(bad)} pairs out of tolerance twice: {_names(bad)}")
        return 1
    print(f"all {len(pairs)} pairs within tolerance")
    return 0


def _names(pairs: list) -> str:
    return ", ".join(f"{p.src}->{p.dst}" for p in pairs)


def clean() -> int:
    """Remove whatever crashed worlds left behind."""
    from kit.net.registry import clean as clean_worlds

    removed = clean_worlds()
    for wid, n in removed:
        print(f"removed world {wid}: {n} processes")
    print("nothing to clean" if not removed else f"cleaned {len(removed)} worlds")
    return 0


def write_start_page(path: Path) -> int:
    """Write the start page (the chapter map and this machine's state) to `path`."""
    from kit.nb.chapters import start_page

    path.write_text(start_page(path.parent, machine_state()))
    print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kit", description="Edge Lab's command line")
    sub = ap.add_subparsers(dest="command", required=True)
    for name, fn in (("doctor", doctor), ("up", up), ("verify", verify), ("clean", clean)):
        sub.add_parser(name, help=fn.__doc__.splitlines()[0] if fn.__doc__ else name)
    page = sub.add_parser("start-page", help="write the page JupyterLab opens on")
    page.add_argument("path", type=Path, help="e.g. labs/START.md (the chapters beside it)")
    args = ap.parse_args(argv)
    if args.command == "start-page":
        return write_start_page(args.path)
    if args.command != "doctor" and (not sys.platform.startswith("linux") or os.geteuid() != 0):
        print(
            f"`python -m kit {args.command}` needs Linux and root (Mininet makes network "
            "namespaces). Run it with sudo, or inside the Vagrant VM.",
            file=sys.stderr,
        )
        return 2
    return {"doctor": doctor, "up": up, "verify": verify, "clean": clean}[args.command]()

"""What assembling a page at the PoP costs on its hit path: ESI off and on, and nginx.

    .venv/bin/python bench/esi_bench.py

One page of the kit's origin (`/esi/...`, chapter 05), every part of it cached:

- nginx `proxy_cache`, serving the shell as stored (nginx has no ESI: the same
  bytes the kit's PoP starts from, so the floor for "a cached page");
- the kit PoP with ESI off: the whole page (`/esi/whole/...` made cacheable by
  an origin rule), one cached object, the PoP's fresh-hit path;
- the kit PoP with ESI on: the shell with `INCLUDES` includes, each a cached
  fragment, assembled per request (parse, one cache lookup per include, a
  streamed response).

Every server is up at once, pinned to core 0 with wrk on core 1, and measured in
interleaved rounds as in `edge_bench.py`; the origin must see (almost) none of
the requests (`handlers_bench.cached_rps`). Prints medians and ratios, exits 0.
Needs wrk and nginx.

Last run (another world busy on the same two cores, so absolute numbers move
between runs; the ratios less): nginx 61k req/s, ESI off 18.8k, ESI on 3.7k,
so assembling four cached fragments costs about 215 µs a page here (a cache
lookup, a task and a Request per include, the template parsed per request,
and a chunked response instead of one write). Sending what is ready as one
piece, rather than one write per part, took it from 522 µs.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from edge_bench import NGINX, ROUNDS, SERVER_CORE, kit_service, start_nginx, stop, table
from handlers_bench import cached_rps

from kit.control import call, protocol

INCLUDES = 4
LAYOUT = "%2C".join(f"part{i}:3600:0" for i in range(INCLUDES))
SHELL = f"/esi/page/bench?f={LAYOUT}"
WHOLE = f"/esi/whole/bench?f={LAYOUT}"
CACHEABLE = {"match": "/esi/whole/*", "headers": {"Cache-Control": "public, max-age=3600"}}


def rows_measured(tmp: Path) -> list[tuple[str, str]]:
    origin = kit_service("origin", tmp, core=SERVER_CORE)
    call(origin.control, "POST", protocol.CONFIG, {"rules": [CACHEABLE]})
    pop = kit_service("pop", tmp, "--pop", "bench", "--origin", origin.url, core=SERVER_CORE)
    nginx = None
    try:
        nginx, nginx_url = start_nginx(tmp, int(origin.url.rpartition(":")[2]))
        urls = {
            "nginx": nginx_url + SHELL,
            "ESI off": pop.url + WHOLE,
            "ESI on": pop.url + SHELL,
        }
        samples: dict[str, list[float]] = {name: [] for name in urls}
        for round_number in range(ROUNDS):
            order = list(urls) if round_number % 2 == 0 else list(reversed(urls))
            for name in order:
                samples[name].append(cached_rps(urls[name], (), origin))
    finally:
        pop.stop()
        origin.stop()
        if nginx is not None:
            stop(nginx)
    rps = {name: statistics.median(values) for name, values in samples.items()}
    extra_us = (1 / rps["ESI on"] - 1 / rps["ESI off"]) * 1e6
    return [
        ("nginx proxy_cache, the cached shell", f"{rps['nginx']:,.0f} req/s"),
        ("kit PoP, ESI off: the whole page cached", f"{rps['ESI off']:,.0f} req/s"),
        (f"kit PoP, ESI on: shell + {INCLUDES} cached fragments", f"{rps['ESI on']:,.0f} req/s"),
        ("    nginx / kit PoP (ESI off)", f"{rps['nginx'] / rps['ESI off']:.1f}x"),
        ("    ESI off / ESI on", f"{rps['ESI off'] / rps['ESI on']:.1f}x"),
        ("    assembly, per page", f"{extra_us:+.0f} µs"),
    ]


def main() -> int:
    if not shutil.which("wrk") or not os.path.exists(NGINX):
        print("skipped: needs wrk and nginx (apt-get install wrk nginx-light)")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="edgelab-bench-"))
    try:
        rows = rows_measured(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"Edge Lab ESI benchmark (loopback; median of {ROUNDS} interleaved rounds per")
    print("server, as in edge_bench; every object cached, the origin idle)\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

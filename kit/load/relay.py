"""Pass connections from a Unix socket to a TCP port: a world host's service, seen from outside.

    python -m kit.load.relay --unix /run/edgelab/locust-ui.sock --to 127.0.0.1:8089

Run inside a world host's network namespace. A Unix socket is a file, so a
process outside the world (JupyterLab's server) can connect to it although the
world's addresses exist only inside; each connection is passed on, byte for
byte in both directions, to the port on the host's own loopback. The socket is
created mode 0600 (root only) and removed when the relay stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def relay(path: str, host: str, port: int) -> None:
    async def connected(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(host, port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    old = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(connected, path)
    finally:
        os.umask(old)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def main(argv: list[str] | None = None) -> None:
    cli = argparse.ArgumentParser(prog="python -m kit.load.relay", description=__doc__)
    cli.add_argument("--unix", required=True, help="the socket to listen on")
    cli.add_argument("--to", required=True, help="HOST:PORT to pass connections to")
    args = cli.parse_args(argv)
    host, _, port = args.to.rpartition(":")
    asyncio.run(relay(args.unix, host, int(port)))


if __name__ == "__main__":
    main()

"""Waits for the replica until it has the bookmark, however long that takes: a paused
replica holds the read until the PoP gives up on the request."""
# exercise: 07-session
# rejected: not bounded by env.config['wait_s']
# instead of: fresh = await caught_up(env, bookmark, env.config["wait_s"])
import asyncio

while (await env.db.position())["position"] < bookmark:
    await asyncio.sleep(0.02)
fresh = True

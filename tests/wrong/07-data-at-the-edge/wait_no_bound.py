"""Polls until the replica catches up, with no deadline: a paused replica holds the
request until the PoP's own time limit."""
# exercise: 07-wait
# rejected: not bounded by wait_s
import asyncio

while (await env.db.position())["position"] < bookmark:
    await asyncio.sleep(0.02)
return True

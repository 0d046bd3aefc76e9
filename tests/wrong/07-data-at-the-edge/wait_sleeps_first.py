"""Sleeps the whole wait, then looks once: a replica that was already there, or caught
up after a moment, still costs the full wait_s."""
# exercise: 07-wait
# rejected: before sleeping
import asyncio

await asyncio.sleep(wait_s)
return (await env.db.position())["position"] >= bookmark

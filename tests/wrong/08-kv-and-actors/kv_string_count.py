"""Adds one to the string KV gives back: the second POST fails on "1" + 1."""
# exercise: 08-kv
# rejected: TypeError
# instead of: count = int(await env.kv.get(key) or 0)
count = await env.kv.get(key) or 0

"""Waits as long as a fragment takes: one fragment that never answers holds the whole
page until the PoP's own limit."""
# exercise: 05-assemble
# rejected: not bounded by env.config['fragment_timeout_s']
# instead of: async with asyncio.timeout(env.config["fragment_timeout_s"]):
if True:

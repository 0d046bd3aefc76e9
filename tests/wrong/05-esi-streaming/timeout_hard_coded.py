"""Bounds the wait with the number the notebook happened to use, not the configured
one."""
# exercise: 05-assemble
# rejected: not bounded by env.config['fragment_timeout_s']
# instead of: async with asyncio.timeout(env.config["fragment_timeout_s"]):
async with asyncio.timeout(2.0):

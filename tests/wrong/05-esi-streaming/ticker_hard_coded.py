"""Uses the notebook's interval instead of the configured one."""
# exercise: 05-stream
# rejected: not every_s apart
# instead of: await asyncio.sleep(env.config["every_s"])
await asyncio.sleep(0.1)

"""Counts from 0, as range does by default."""
# exercise: 05-stream
# rejected: ticks from 1
# instead of: for n in range(1, env.config["count"] + 1):
for n in range(env.config["count"]):

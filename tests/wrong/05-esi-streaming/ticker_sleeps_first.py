"""Sleeps before every tick, the first one too: the page starts one interval late."""
# exercise: 05-stream
# rejected: the first tick waited
# instead of: if n > 1:
if n > 0:

"""A bound of its own, one second, whatever wait_s the caller gave."""
# exercise: 07-wait
# rejected: not bounded by wait_s
# instead of: deadline = time.monotonic() + wait_s
deadline = time.monotonic() + 1.0

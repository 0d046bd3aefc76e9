"""Keeps articles for the whole update time and no more: fresh enough, but every time a
copy expires the next reader waits for the slow origin."""
# exercise: 06-policy
# rejected: waited for the origin
# instead of: fresh = update_s // 2  # fresh for half the promise, served stale while refreshed for the rest
fresh = update_s

"""Keeps articles for a minute: the origin is spared, but an edit takes a minute to show."""
# exercise: 06-policy
# rejected: the new one
# instead of: fresh = update_s // 2  # fresh for half the promise, served stale while refreshed for the rest
fresh = 60

"""Forgets stale-if-error: when the origin fails, a stale copy may not be served, and
readers get the 503."""
# exercise: 06-policy
# rejected: the stale copy
# instead of: f"stale-if-error={outage_s}",
"stale-if-error=0",

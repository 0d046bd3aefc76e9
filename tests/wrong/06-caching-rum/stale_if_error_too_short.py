"""Serves stale on error for one minute, whatever the outage the site must survive."""
# exercise: 06-policy
# rejected: outage the site must ride out
# instead of: f"stale-if-error={outage_s}",
"stale-if-error=60",

"""Alerts at the limit as well as above it."""
# exercise: 09-local
# rejected: above the limit, not at it
# instead of: if vib > self.limit:
if vib >= self.limit:

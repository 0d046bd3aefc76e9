"""Compares the first segment only: fails for two-segment prefixes."""

# exercise: 02-under
# rejected: the prefix itself
return path.split("/")[1] == prefix.strip("/")

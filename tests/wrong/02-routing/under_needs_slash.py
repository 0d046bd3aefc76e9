"""Only paths below the prefix: forgets the prefix itself."""

# exercise: 02-under
# rejected: the prefix itself
return path.startswith(prefix + "/")

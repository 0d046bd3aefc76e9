"""Only the prefix itself: nothing below it counts."""

# exercise: 02-under
# rejected: a path below it
return path == prefix

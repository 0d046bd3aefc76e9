"""Looks for the prefix anywhere in the path."""

# exercise: 02-under
# rejected: look-alike
return prefix in path

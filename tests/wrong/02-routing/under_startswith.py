"""Compares letters: startswith('/old') also takes /oldies."""

# exercise: 02-under
# rejected: look-alike
return path.startswith(prefix)

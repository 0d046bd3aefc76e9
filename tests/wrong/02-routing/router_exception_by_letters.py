"""Exceptions by letters: /apiary counts as under /api."""
# exercise: 02-router
# rejected: as the exception
# instead of: exempt = any(under(path, prefix) for prefix in rule["except"])
exempt = any(path.startswith(prefix) for prefix in rule["except"])

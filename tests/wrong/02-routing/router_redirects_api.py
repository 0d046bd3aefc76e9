"""No exceptions: redirects API calls and assets too."""
# exercise: 02-router
# rejected: redirect exception
# instead of: exempt = any(under(path, prefix) for prefix in rule["except"])
exempt = False

"""Builds the headers but forwards the original request."""
# exercise: 02-router
# rejected: trusted header
# instead of: request = request.replace(headers=headers)

"""Rewrites by letters: /oldies becomes /pageies."""
# exercise: 02-router
# rejected: only starts with the same letters as /old
# instead of: if under(path, rule["from"]):
if path.startswith(rule["from"]):

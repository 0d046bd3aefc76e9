"""Writes Europe's countries into the code, not from the rule."""
# exercise: 02-router
# rejected: the origin that answered
# instead of: if country in rule["countries"]:
if country in {"DE", "AT", "CH", "GB", "FR", "IT", "ES", "NL"}:

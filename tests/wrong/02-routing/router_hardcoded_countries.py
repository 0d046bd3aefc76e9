"""Writes the German-speaking countries into the code, not from the rule."""
# exercise: 02-router
# rejected: rule's countries
# instead of: if country in rule["countries"] and not exempt:
if country in {"DE", "AT", "CH"} and not exempt:

"""Redirects Germany only: Austria and Switzerland are in the rule too."""
# exercise: 02-router
# rejected: user-vienna
# instead of: if country in rule["countries"] and not exempt:
if country == "DE" and not exempt:

"""Redirects by city: only Berlin, not the rule's countries."""
# exercise: 02-router
# rejected: user-vienna
# instead of: if country in rule["countries"] and not exempt:
if request.geo.city == "Berlin" and not exempt:

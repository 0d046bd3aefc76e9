"""Puts the city in x-client-country."""
# exercise: 02-router
# rejected: trusted header
# instead of: headers["x-client-country"] = country
headers["x-client-country"] = request.geo.city or ""

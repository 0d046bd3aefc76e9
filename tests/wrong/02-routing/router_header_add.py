"""headers.add keeps the client's forged value next to the edge's."""
# exercise: 02-router
# rejected: forged
# instead of: headers["x-client-country"] = country
headers.add("x-client-country", country)

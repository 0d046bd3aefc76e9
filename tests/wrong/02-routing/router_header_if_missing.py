"""Sets the header only when the client did not send one."""
# exercise: 02-router
# rejected: forged
# instead of: headers["x-client-country"] = country
headers.setdefault("x-client-country", country)

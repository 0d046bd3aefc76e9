"""Refuses with 401 but without a WWW-Authenticate challenge (RFC 9110 requires one)."""
# exercise: 03-gateway
# rejected: no WWW-Authenticate header
# instead of: headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{why}"'
headers["X-Auth-Error"] = why

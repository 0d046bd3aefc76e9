"""Validates bodies on POST only: the same bad body sent with PUT reaches the origin."""
# exercise: 03-gateway
# rejected: PUT /api/echo
# instead of: if schema is not None and request.method in ("POST", "PUT", "PATCH"):
if schema is not None and request.method == "POST":

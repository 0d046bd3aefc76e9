"""Refuses only once the count is past the limit: one request too many gets through."""
# exercise: 08-kv
# rejected: POST /limit/CLIENT one after another
# instead of: if used >= env.config["limit"]:
if used > env.config["limit"]:

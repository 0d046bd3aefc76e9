"""Takes a token from refused requests too: a client that retries while limited digs
itself deeper, and is locked out long after it slowed down."""
# exercise: 03-bucket
# rejected: a refused request costs nothing
# instead of: return False, {"tokens": tokens, "at": now}
return False, {"tokens": tokens - 1, "at": now}

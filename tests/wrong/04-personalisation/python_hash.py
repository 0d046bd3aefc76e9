"""Python's hash() of a str is salted per process: each PoP puts a visitor elsewhere."""
# exercise: 04-personalise
# rejected: not sticky across PoPs
# instead of: digest = hashlib.sha256(uid.encode()).digest()
digest = hash(uid).to_bytes(8, "big", signed=True)

"""Fetches the issuer's keys once and keeps them forever: after a rotation every new
token is refused."""
# exercise: 03-gateway
# rejected: rotated key
# instead of: if kid not in jwks["keys"] and now - jwks["fetched"] >= conf["jwks_min_refresh_s"]:
if not jwks["keys"]:

"""Fetches the JWKS on every request: the issuer is back on every request's path."""
# exercise: 03-gateway
# rejected: JWKS fetches during 4 requests
# instead of: if kid not in jwks["keys"] and now - jwks["fetched"] >= conf["jwks_min_refresh_s"]:
if True:

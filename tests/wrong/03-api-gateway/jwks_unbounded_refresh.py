"""Fetches the JWKS again for every unknown kid: an attacker who makes up kids makes
every PoP hammer the issuer."""
# exercise: 03-gateway
# rejected: unknown kids
# instead of: if kid not in jwks["keys"] and now - jwks["fetched"] >= conf["jwks_min_refresh_s"]:
if kid not in jwks["keys"]:

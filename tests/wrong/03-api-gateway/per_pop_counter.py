"""Keeps a bucket at each PoP even when quota_url is set: a client spraying N PoPs
gets N times its limit."""
# exercise: 03-gateway
# rejected: spraying
# instead of: if conf.get("quota_url"):
if False:  # every PoP counts for itself

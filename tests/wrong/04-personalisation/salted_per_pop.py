"""A cohort hash salted with the PoP's name: a visitor changes cohort when their PoP does."""
# exercise: 04-personalise
# rejected: not sticky across PoPs
# instead of: digest = hashlib.sha256(uid.encode()).digest()
digest = hashlib.sha256(f"{env.pop}:{uid}".encode()).digest()

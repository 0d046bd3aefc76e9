"""Ignores the configured leeway: a client whose clock is a few seconds behind gets
401s for tokens that are still good."""
# exercise: 03-gateway
# rejected: with leeway_s=
# instead of: leeway=conf["leeway_s"],
leeway=0,

"""Adds x-cohort next to the client's own: a client picks its cohort by sending one."""
# exercise: 04-personalise
# rejected: forged
# instead of: headers["x-cohort"], headers["x-market"], headers["x-device"] = cohort, market, device
headers.add("x-cohort", cohort)
headers["x-market"], headers["x-device"] = market, device

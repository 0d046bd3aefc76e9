"""Keeps the Cookie on the way to the origin: the variant's cached page greets its first visitor."""
# exercise: 04-personalise
# rejected: a leak
# instead of: headers.popall("Cookie", None)
pass

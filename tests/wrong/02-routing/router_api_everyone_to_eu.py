"""Sends every API call to the European origin, whoever asks."""
# exercise: 02-router
# rejected: the origin that answered
# instead of: if country in rule["countries"]:
if True:

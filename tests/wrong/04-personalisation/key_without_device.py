"""Leaves the device out of the cache key: a phone gets the desktop page."""
# exercise: 04-personalise
# rejected: does not hold the device
# instead of: key = f"{request.url.raw_path_qs}#{cohort}/{market}/{device}"
key = f"{request.url.raw_path_qs}#{cohort}/{market}"

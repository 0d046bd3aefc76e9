"""Puts the visitor's id in the cache key with the variant: the hit ratio collapses."""
# exercise: 04-personalise
# rejected: holds more than the variant
# instead of: key = f"{request.url.raw_path_qs}#{cohort}/{market}/{device}"
key = f"{request.url.raw_path_qs}#{cohort}/{market}/{device}/{uid}"

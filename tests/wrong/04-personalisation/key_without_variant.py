"""The cache key is the URL alone: the first visitor's variant is served to everyone."""
# exercise: 04-personalise
# rejected: the cache key must hold the cohort
# instead of: key = f"{request.url.raw_path_qs}#{cohort}/{market}/{device}"
key = request.url.raw_path_qs

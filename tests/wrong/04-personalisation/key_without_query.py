"""Keys on the path without the query string: ?page=2 gets page 1."""
# exercise: 04-personalise
# rejected: dropped the query string
# instead of: key = f"{request.url.raw_path_qs}#{cohort}/{market}/{device}"
key = f"{request.url.path}#{cohort}/{market}/{device}"

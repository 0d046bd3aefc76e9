"""A cache key made from the whole Cookie header: every visitor a cache entry of their own."""
# exercise: 04-personalise
# rejected: holds more than the variant
# instead of: key = f"{request.url.raw_path_qs}#{cohort}/{market}/{device}"
key = f"{request.url.raw_path_qs}#{request.headers.get('Cookie', '')}"

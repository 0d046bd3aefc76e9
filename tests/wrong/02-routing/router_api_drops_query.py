"""Routes the API call with its path but without the query string."""
# exercise: 02-router
# rejected: API routing: the query string
# instead of: nearest = request.replace(url=rule["url"] + request.url.raw_path_qs)
nearest = request.replace(url=rule["url"] + request.path)

"""env.fetch(url): a POST becomes a GET, with no body and no headers."""
# exercise: 02-router
# rejected: the method the origin received
# instead of: nearest = request.replace(url=rule["url"] + request.url.raw_path_qs)
nearest = rule["url"] + request.url.raw_path_qs

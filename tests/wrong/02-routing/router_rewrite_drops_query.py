"""The taught with_path() rewrite: it drops the query string."""
# exercise: 02-router
# rejected: rewrite: the query string
# instead of: new_url = request.url.with_path(new_path).with_query(request.url.query)
new_url = request.url.with_path(new_path)

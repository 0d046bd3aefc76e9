"""The redirect keeps the path but drops the query string."""
# exercise: 02-router
# rejected: dropped the query string
# instead of: return Response.redirect(rule["to"] + request.url.raw_path_qs, 302)
return Response.redirect(rule["to"] + request.path, 302)

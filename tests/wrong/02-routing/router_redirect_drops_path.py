"""Redirects every page to the regional home page."""
# exercise: 02-router
# rejected: dropped the path
# instead of: return Response.redirect(rule["to"] + request.url.raw_path_qs, 302)
return Response.redirect(rule["to"], 302)

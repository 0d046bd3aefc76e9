"""Answers the old path with a redirect instead of a rewrite."""
# exercise: 02-router
# rejected: without a redirect
# instead of: request = request.replace(url=new_url)
# instead of: break
return Response.redirect(str(new_url), 301)

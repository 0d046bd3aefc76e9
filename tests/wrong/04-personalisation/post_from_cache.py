"""Fetches the path as a new GET: a POST is answered with the cached page."""
# exercise: 04-personalise
# rejected: 405
# instead of: if request.method not in ("GET", "HEAD"):  # not a page view: the user's own request
# instead of: return await env.origin.fetch(request)
pass
# instead of: page = await env.origin.fetch(request.replace(headers=headers), cache_key=key)
page = await env.origin.fetch(request.url.raw_path_qs, headers=dict(headers), cache_key=key)

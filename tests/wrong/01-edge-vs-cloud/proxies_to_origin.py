"""Proxies to the origin instead of answering at the edge."""
# exercise: 01-whoami
# rejected: origin
return await env.origin.fetch(request)

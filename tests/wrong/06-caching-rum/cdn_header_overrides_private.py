"""Says private to browsers and max-age to the CDN: the targeted field replaces
Cache-Control for the PoP, so the PoP keeps the personal page."""
# exercise: 06-policy
# rejected: no shared cache keeps a personal page
# instead of: {"match": "/p/*", "headers": {"Cache-Control": "private, max-age=0"}},
{"match": "/p/*", "headers": {"Cache-Control": "private", "CDN-Cache-Control": "max-age=60"}},

"""Keeps a copy of each personal page per cookie: no reader sees another's page, but the
shared cache now holds every reader's private page, which the site promised it never would."""
# exercise: 06-policy
# rejected: not even per visitor
# instead of: {"match": "/p/*", "headers": {"Cache-Control": "private, max-age=0"}},
{"match": "/p/*", "headers": {"Cache-Control": "public, max-age=60", "Vary": "Cookie"}},

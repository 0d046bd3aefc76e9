"""Leaves the personal pages to the origin, which calls them public: the PoP keeps the
first reader's page and hands it to the next."""
# exercise: 06-policy
# rejected: no shared cache keeps a personal page
# instead of: {"match": "/p/*", "headers": {"Cache-Control": "private, max-age=0"}},

"""Lets the assembled page be cached by anyone: the next visitor behind a shared cache is
greeted by someone else's name."""
# exercise: 05-assemble
# rejected: cacheable by shared caches
# instead of: headers = {"Cache-Control": "private, no-store"}
headers = {"Cache-Control": "public, max-age=60"}

"""Takes the first language in Accept-Language, ignoring the q weights."""
# exercise: 01-whoami
# rejected: field 'lang'
# instead of: preferences = []  # (q, tag) for each language in Accept-Language
# instead of: for part in request.headers.get("Accept-Language", "").split(","):
# instead of: tag, _, q = part.strip().partition(";q=")
# instead of: if tag:
# instead of: preferences.append((float(q or 1), tag))
first = request.headers.get("Accept-Language", "").split(",")[0].split(";")[0].strip()
# instead of: "lang": max(preferences)[1] if preferences else None,
"lang": first or None,

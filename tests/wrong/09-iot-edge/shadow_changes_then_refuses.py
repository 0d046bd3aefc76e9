"""Merges the update into the document it was given, then checks the version."""
# exercise: 09-shadow
# rejected: the document after a refused update
# instead of: version = request.get("version")
version = request.get("version")
for part, changes in request.get("state", {}).items():
    doc["state"].setdefault(part, {}).update(changes)

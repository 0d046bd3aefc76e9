"""Counts every request, GETs included: reading a counter changes it."""
# exercise: 08-kv
# rejected: a GET changes nothing
# instead of: if request.method == "POST":
if True:

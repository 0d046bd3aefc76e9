"""Treats an id that breaks the rule as no id: the client's error is hidden."""
# exercise: 04-personalise
# rejected: 400
# instead of: return Response.text("bad uid cookie: 8 to 64 letters, digits, - or _\n", 400)
uid = None

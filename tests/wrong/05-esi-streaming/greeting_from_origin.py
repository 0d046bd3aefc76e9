"""Fetches the greeting like any fragment: the origin is asked on every view and, without
the visitor's cookie, greets a guest."""
# exercise: 05-assemble
# rejected: render it at the edge
# instead of: if src == "/esi/user":
if src == "/esi/nobody":

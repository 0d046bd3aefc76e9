"""Sends the greeted page on with the origin's public Cache-Control."""
# exercise: 04-personalise
# rejected: private
# instead of: response.headers["Cache-Control"] = "private, no-store"
pass

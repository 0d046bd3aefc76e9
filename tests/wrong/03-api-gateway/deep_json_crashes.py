"""Catches ValueError only: a body nested thousands deep raises RecursionError in the
parser, and the client gets a 500."""
# exercise: 03-gateway
# rejected: nested 3000 deep
# instead of: except (ValueError, RecursionError):
except ValueError:

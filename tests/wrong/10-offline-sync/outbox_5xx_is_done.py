"""Takes any answer as done, a 503 too: the server applied nothing, and nobody sends it again."""
# exercise: 10-outbox
# rejected: a 5xx means the server did not apply it
# instead of: if status >= 500:
if status >= 600:

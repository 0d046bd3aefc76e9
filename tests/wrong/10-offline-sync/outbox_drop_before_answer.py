"""Takes the entry out of the outbox before the server answered: a failed send loses it."""
# exercise: 10-outbox
# rejected: an entry may leave the outbox only after the server answered it
# instead of: seq, key, method, path, body = row
seq, key, method, path, body = row
self.db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))  # taken: it is on its way

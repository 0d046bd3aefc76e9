"""Deletes what was sent: a reading the broker delivers again afterwards is sent again."""
# exercise: 09-spool
# rejected: readings put twice
# instead of: self.db.executemany("UPDATE spool SET sent = 1 WHERE sensor = ? AND seq = ?", keys)
self.db.executemany("DELETE FROM spool WHERE sensor = ? AND seq = ?", keys)

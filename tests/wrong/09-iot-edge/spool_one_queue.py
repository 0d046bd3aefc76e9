"""One queue for all sensors, oldest first: a sensor's backlog holds back the others."""
# exercise: 09-spool
# rejected: starves the others
# instead of: sensors = [
# instead of: s for (s,) in self.db.execute("SELECT DISTINCT sensor FROM spool WHERE sent = 0")
# instead of: ]
# instead of: share = max(1, limit // max(1, len(sensors)))  # every waiting sensor gets a share
# instead of: batch = []
# instead of: for sensor in sensors:
# instead of: rows = self.db.execute(
# instead of: "SELECT body FROM spool WHERE sensor = ? AND sent = 0 ORDER BY seq LIMIT ?",
# instead of: (sensor, share),
# instead of: )
# instead of: batch += [json.loads(body) for (body,) in rows]
rows = self.db.execute("SELECT body FROM spool WHERE sent = 0 ORDER BY rowid LIMIT ?", (limit,))
batch = [json.loads(body) for (body,) in rows]

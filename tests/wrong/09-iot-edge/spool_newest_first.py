"""Sends the newest readings first, so live data is fresh after an outage: order is lost."""
# exercise: 09-spool
# rejected: oldest first
# instead of: "SELECT body FROM spool WHERE sensor = ? AND sent = 0 ORDER BY seq LIMIT ?",
"SELECT body FROM spool WHERE sensor = ? AND sent = 0 ORDER BY seq DESC LIMIT ?",

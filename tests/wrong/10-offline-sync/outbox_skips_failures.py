"""Goes on past a failed entry, so later operations on the same note overtake it."""
# exercise: 10-outbox
# rejected: out of order
import json
import sqlite3
import uuid


class Outbox:
    def __init__(self, path):
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " key TEXT NOT NULL, method TEXT, path TEXT, body TEXT)"
        )

    def add(self, method, path, body):
        self.db.execute(
            "INSERT INTO outbox (key, method, path, body) VALUES (?, ?, ?, ?)",
            (str(uuid.uuid4()), method, path, json.dumps(body)),
        )

    def pending(self):
        return self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def replay(self, send):
        rows = self.db.execute("SELECT seq, key, method, path, body FROM outbox ORDER BY seq")
        for seq, key, method, path, body in rows.fetchall():
            try:
                status = send(method, path, json.loads(body), {"Idempotency-Key": f'"{key}"'})
            except ConnectionError:
                continue  # try the next one; this one waits for the next sync
            if status < 500:
                self.db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

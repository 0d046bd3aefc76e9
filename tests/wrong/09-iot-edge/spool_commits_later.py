"""Acknowledges before it persists: put() keeps readings in memory and writes them every 20."""
# exercise: 09-spool
# rejected: when put() returns, the broker is told the reading arrived
# instead of: self.db = sqlite3.connect(path, isolation_level=None)
self.db, self.pending = sqlite3.connect(path, isolation_level=None), []
# instead of: def put(self, reading):
def put(self, reading):
    self.pending.append(reading)
    if len(self.pending) >= 20:
        for r in self.pending:
            self.write(r)
        self.pending = []

def write(self, reading):

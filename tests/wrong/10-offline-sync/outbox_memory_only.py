"""Keeps the queue in a list: a restarted service worker starts with an empty outbox."""
# exercise: 10-outbox
# rejected: lost across the restart
import uuid


class Outbox:
    def __init__(self, path):
        self.queue = []  # the path is ignored

    def add(self, method, path, body):
        self.queue.append((str(uuid.uuid4()), method, path, body))

    def pending(self):
        return len(self.queue)

    def replay(self, send):
        while self.queue:
            key, method, path, body = self.queue[0]
            try:
                status = send(method, path, body, {"Idempotency-Key": f'"{key}"'})
            except ConnectionError:
                return
            if status >= 500:
                return
            self.queue.pop(0)

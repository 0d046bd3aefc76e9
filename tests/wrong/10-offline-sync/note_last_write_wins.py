"""Merges by timestamp: the note with the newest edit replaces the others (last write wins)."""
# exercise: 10-note
# rejected: edits lost
import time

from pycrdt import Map


class Note:
    def __init__(self):
        self.doc = Doc()
        self.shared = self.doc.get("note", type=Map)
        self.local, self.at = "", 0.0

    def insert(self, index, text):
        self.local = self.local[:index] + text + self.local[index:]
        self.at = time.time()

    def delete(self, index, length):
        self.local = self.local[:index] + self.local[index + length :]
        self.at = time.time()

    def __str__(self):
        return self.local

    def reconnect(self, server):
        self.doc.apply_update(server.missing(self.doc.get_state()))
        theirs = self.shared.get("at", 0.0)
        if theirs > self.at:  # the server's copy is newer: take it
            self.local, self.at = self.shared["text"], theirs
        else:  # mine is newer: it replaces the server's
            self.shared["text"], self.shared["at"] = self.local, self.at
            server.send(self.doc.get_update(server.state()))

"""Sends a new document made from its text on every reconnect: the server merges it as new
edits, so the text arrives again beside the old one."""
# exercise: 10-note
# rejected: applied twice
# instead of: self.doc.apply_update(server.missing(self.doc.get_state()))  # what I lack
# instead of: server.send(self.doc.get_update(server.state()))  # what the server lacks
fresh = Doc()
fresh.get("note", type=Text).insert(0, str(self.text))
server.send(fresh.get_update())  # my note as it is now
self.doc = Doc()
self.text = self.doc.get("note", type=Text)
self.doc.apply_update(server.missing(self.doc.get_state()))

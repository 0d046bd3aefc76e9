"""Merges, then puts its own text back over the merged one: the whole document replaced."""
# exercise: 10-note
# rejected: edits lost
# instead of: self.doc.apply_update(server.missing(self.doc.get_state()))  # what I lack
mine = str(self.text)
self.doc.apply_update(server.missing(self.doc.get_state()))
if mine and str(self.text) != mine:  # my copy is what I see: it wins
    del self.text[0 : len(self.text)]
    self.text.insert(0, mine)

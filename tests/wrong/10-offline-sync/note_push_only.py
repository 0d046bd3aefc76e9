"""Sends what the server lacks but never applies what the device lacks."""
# exercise: 10-note
# rejected: a device that reconnects to a note it does not have
# instead of: self.doc.apply_update(server.missing(self.doc.get_state()))  # what I lack
pass  # the server will have everything; that is enough

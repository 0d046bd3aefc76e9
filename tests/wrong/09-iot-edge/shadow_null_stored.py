"""Stores null as a value instead of deleting the key."""
# exercise: 09-shadow
# rejected: a key set to null is deleted
# instead of: state[part].pop(name, None)  # null deletes
state[part][name] = None

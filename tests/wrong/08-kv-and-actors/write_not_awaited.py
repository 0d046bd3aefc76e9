"""Calls storage.put without await: the write never runs, and every POST starts from 0."""
# exercise: 08-actor
# rejected: POST answers gave
# instead of: await self.storage.put("count", count)  # committed before anyone is told
self.storage.put("count", count)

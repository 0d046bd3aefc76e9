"""Keeps the count in the instance: right while it lives, gone when its worker goes."""
# exercise: 08-actor
# rejected: after edge.evict
# instead of: self.storage = state.storage
self.storage, self.count = state.storage, 0
# instead of: count = await self.storage.get("count") or 0
count = self.count
# instead of: await self.storage.put("count", count)  # committed before anyone is told
self.count = count

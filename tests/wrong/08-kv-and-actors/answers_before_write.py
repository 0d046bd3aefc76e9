"""Answers while its write is still running (a task left to finish on its own): with no
output gate, the next request can read the count before that write is stored."""
# exercise: 08-actor
# rejected: done (awaited) before the answer went out
# instead of: await self.storage.put("count", count)  # committed before anyone is told
import asyncio

asyncio.create_task(self.storage.put("count", count))

"""Streams, but only after awaiting all fragments first: a stream that starts late is a
buffered page."""
# exercise: 05-assemble
# rejected: buffers the page
# instead of: async def page():
async def page():
    await asyncio.gather(*fragments)

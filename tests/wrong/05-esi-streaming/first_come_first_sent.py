"""Sends each fragment as soon as it arrives, in whatever order they finish: fast, and
the page comes out jumbled."""
# exercise: 05-assemble
# rejected: out of document order
# instead of: for i, text in enumerate(parts):
# instead of: yield text if i % 2 == 0 else await fragments[i // 2]
arrivals = asyncio.as_completed(fragments)
for i, text in enumerate(parts):
    yield text if i % 2 == 0 else await next(arrivals)

"""Small aiohttp services that run on the world's hosts.

Each runs as `python -m kit.services.NAME --host H --port P ...` and serves
`/_kit/health` and `/_kit/metrics` (see `common.py`):

- `origin`: pages, a JSON API and static assets, with configurable think time
  and caching headers.
- `pop`: a point of presence: caching reverse proxy (`cache.py`, `encoding.py`)
  that runs edge handlers written against `kit.runtime`.
"""

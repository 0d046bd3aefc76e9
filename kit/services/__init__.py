"""Small aiohttp services that run on the world's hosts.

Each runs as `python -m kit.services.NAME --host H --port P --unix SOCKET ...`:
users' requests on the TCP port, and `/_kit/health`, `/_kit/metrics` and
everything that changes the service only on the root-only Unix socket (see
`common.py`); `guard.py` protects the TCP port from hostile clients.

- `origin`: pages, a JSON API and static assets, with configurable think time
  and caching headers.
- `pop`: a point of presence: caching reverse proxy (`cache.py`, `encoding.py`)
  that runs edge handlers written against `kit.runtime`, each in a supervised
  worker process (`workers.py`).
"""

"""The control protocol: every path a service serves on its control socket.

Declared once: the services register their routes from these names
(`kit/services/common.py`, `origin.py`, `pop_control.py`), and the clients
(`client.py`, `deploy.py`, `kit.edge`) call them. Bodies are JSON both ways.
"""

HEALTH = "/_kit/health"  # GET: {"status": "ok", "service": ...}
METRICS = "/_kit/metrics"  # GET: counters, cache outcomes, latency histogram
METRICS_RESET = "/_kit/metrics/reset"  # POST: zero them
CONFIG = "/_kit/config"  # origin, identity, db. GET: its config; POST: merge changes into it
CACHE = "/_kit/cache"  # pop. GET: size; DELETE ?prefix=/api, ?url=/a?b or ?tag=T: purge
RUM = "/_kit/rum"  # pop. GET: the RUM collector's sketches per region; DELETE: empty them
DEPLOY = "/_kit/deploy"  # pop. POST: stage a handler; GET: the active one; DELETE: remove it
ACTIVATE = "/_kit/deploy/activate"  # pop. POST {"token"}: serve a staged handler
ROLLBACK = "/_kit/deploy/rollback"  # pop. POST {"token"}: undo that activation
STAGED = "/_kit/deploy/staged/{token}"  # pop. DELETE: drop one staged handler
EVICT = "/_kit/deploy/evict"  # pop. POST: unload the handler; the next request loads it
IDENTITY_TOKEN = "/_kit/identity/token"  # identity. POST {claims, alg, headers, ttl_s}: a token
IDENTITY_ROTATE = "/_kit/identity/rotate"  # identity. POST {retire_old}: a new signing key
IDENTITY_KEYS = "/_kit/identity/keys"  # identity. GET: the signing kid and the JWKS
QUOTA = "/_kit/quota"  # identity. DELETE: forget every quota counter
DB_POSITION = "/_kit/db/position"  # db. GET: role, position (last txid applied), head, lag
KV = "/_kit/kv"  # kv. DELETE: forget every key
KV_PEERS = "/_kit/kv/peers"  # kv. POST {"secret"}: the PoPs' secret, which placements need

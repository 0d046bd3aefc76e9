"""Counts one round trip for a fresh connection: forgets TCP's handshake."""
# exercise: 01-ttfb-model
# rejected: counts one round trip for a fresh connection
extra = 0 if reused else {None: 0, "1.3": 1, "1.2": 2}[tls]
return (extra + 1) * rtt_ms + server_ms

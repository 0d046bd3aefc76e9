"""Doubles the server time (as if it were a round trip too)."""
# exercise: 01-ttfb-model
# rejected: counts the server time twice
handshakes = 0 if reused else 1 + {None: 0, "1.3": 1, "1.2": 2}[tls]
return (handshakes + 1) * rtt_ms + 2 * server_ms

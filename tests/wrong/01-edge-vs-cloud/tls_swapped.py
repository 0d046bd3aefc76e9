"""Thinks TLS 1.3 costs more round trips than 1.2 (it is the other way round)."""
# exercise: 01-ttfb-model
# rejected: TLS 1.2 and TLS 1.3 swapped
handshakes = 0 if reused else 1 + {None: 0, "1.3": 2, "1.2": 1}[tls]
return (handshakes + 1) * rtt_ms + server_ms

"""Makes a reused connection pay the TLS handshake again."""
# exercise: 01-ttfb-model
# rejected: reused connection pay
tls_rtts = {None: 0, "1.3": 1, "1.2": 2}[tls]
return (tls_rtts + (1 if reused else 2)) * rtt_ms + server_ms

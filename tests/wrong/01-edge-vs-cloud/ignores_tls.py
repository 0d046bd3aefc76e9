"""Ignores TLS: a fresh connection costs the same with or without it."""
# exercise: 01-ttfb-model
# rejected: leaves out TLS
return (1 if reused else 2) * rtt_ms + server_ms

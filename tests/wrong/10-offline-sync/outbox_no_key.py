"""Retries without idempotency keys: a retry after a lost answer is applied a second time."""
# exercise: 10-outbox
# rejected: without an Idempotency-Key
# instead of: status = send(method, path, json.loads(body), {"Idempotency-Key": f'"{key}"'})
status = send(method, path, json.loads(body), {})

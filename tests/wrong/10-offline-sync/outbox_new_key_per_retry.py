"""Makes the key when sending, so every retry carries a new one and the key is useless."""
# exercise: 10-outbox
# rejected: a retry carried a new Idempotency-Key
# instead of: status = send(method, path, json.loads(body), {"Idempotency-Key": f'"{key}"'})
key = str(uuid.uuid4())  # a fresh key for this attempt
status = send(method, path, json.loads(body), {"Idempotency-Key": f'"{key}"'})

"""Counts tokens down but never gives any back: a key that used its burst is locked out."""
# exercise: 03-bucket
# rejected: the refill lets through
# instead of: tokens = min(burst, bucket["tokens"] + (now - bucket["at"]) * rate)
tokens = bucket["tokens"]

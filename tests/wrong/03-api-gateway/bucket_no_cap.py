"""Refills without a ceiling: a key idle for an hour may then send an hour's worth at once."""
# exercise: 03-bucket
# rejected: at most burst
# instead of: tokens = min(burst, bucket["tokens"] + (now - bucket["at"]) * rate)
tokens = bucket["tokens"] + (now - bucket["at"]) * rate

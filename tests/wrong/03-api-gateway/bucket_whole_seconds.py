"""Refills per whole second that passed, and forgets the fraction: at a high rate, or
with requests less than a second apart, the tokens never come back."""
# exercise: 03-bucket
# rejected: come back
# instead of: tokens = min(burst, bucket["tokens"] + (now - bucket["at"]) * rate)
tokens = min(burst, bucket["tokens"] + int(now - bucket["at"]) * rate)

"""Keeps every counter under one key: the NAME is ignored."""
# exercise: 08-kv
# rejected: counters of different names are apart
# instead of: key = "count:" + name
key = "count"

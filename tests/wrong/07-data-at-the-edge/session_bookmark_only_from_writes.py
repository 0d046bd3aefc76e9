"""Only a write moves the bookmark; a read hands back what it was sent. A session that
read a newer value at one PoP can then read an older one at the next."""
# exercise: 07-session
# rejected: monotonic reads broken across a failover
# instead of: seen = {"x-bookmark": str(max(bookmark, found["position"]))}
seen = {"x-bookmark": str(bookmark)} if bookmark else {}

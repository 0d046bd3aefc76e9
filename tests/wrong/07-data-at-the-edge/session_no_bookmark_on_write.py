"""The write's answer carries no bookmark: the session has nothing to come back with."""
# exercise: 07-session
# rejected: had no x-bookmark header
# instead of: return Response("stored", headers={"x-bookmark": str(max(bookmark, done["txid"]))})
return Response("stored")

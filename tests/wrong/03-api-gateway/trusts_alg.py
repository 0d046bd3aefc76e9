"""Lets the token say which algorithm checks it: HS256 with the public key as the secret
is then not refused but crashes the handler (a 500), and a library with fewer guards
than PyJWT would accept it."""
# exercise: 03-gateway
# rejected: RS256→HS256 confusion
# instead of: algorithms=conf["algorithms"],  # ours, never the token's own "alg"
algorithms=[jwt.get_unverified_header(token)["alg"]],

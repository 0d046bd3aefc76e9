"""Makes an id for a new visitor but never sets the cookie: every visit is a first visit."""
# exercise: 04-personalise
# rejected: Set-Cookie
# instead of: response.headers["Set-Cookie"] = f"uid={uid}; Path=/; Max-Age=31536000; SameSite=Lax"
pass

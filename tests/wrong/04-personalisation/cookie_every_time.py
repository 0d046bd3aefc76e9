"""Sets the uid cookie on every response, also for visitors who have one."""
# exercise: 04-personalise
# rejected: set the cookie only when it is absent
# instead of: if new_visitor:
# instead of: response.headers["Set-Cookie"] = f"uid={uid}; Path=/; Max-Age=31536000; SameSite=Lax"
response.headers["Set-Cookie"] = f"uid={uid}; Path=/; Max-Age=31536000; SameSite=Lax"

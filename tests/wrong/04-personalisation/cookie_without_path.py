"""A cookie without Path=/ comes back only under the page's directory."""
# exercise: 04-personalise
# rejected: Path=/
# instead of: response.headers["Set-Cookie"] = f"uid={uid}; Path=/; Max-Age=31536000; SameSite=Lax"
response.headers["Set-Cookie"] = f"uid={uid}; Max-Age=31536000"

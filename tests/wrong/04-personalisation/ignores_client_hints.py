"""Reads the User-Agent only: Chrome's reduced UA does not say which device it is."""
# exercise: 04-personalise
# rejected: Sec-CH-UA-Mobile: ?1
# instead of: if request.headers.get("Sec-CH-UA-Mobile") == "?1":
if False:

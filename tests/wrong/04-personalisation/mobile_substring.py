"""'Mobile' in the User-Agent means a phone: an iPad's Safari says Mobile too."""
# exercise: 04-personalise
# rejected: iPad
# instead of: if request.headers.get("Sec-CH-UA-Mobile") == "?1":
if request.headers.get("Sec-CH-UA-Mobile") == "?1" or "Mobile" in agent:

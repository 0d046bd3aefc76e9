"""dict(part.split("=")) parses a Cookie header: a part without '=' is a 500."""
# exercise: 04-personalise
# rejected: 500
# instead of: for cookie in "; ".join(request.headers.getall("Cookie", [])).split(";"):
# instead of: name, equals, value = cookie.strip().partition("=")
# instead of: if equals and name == "uid":
# instead of: uid = value
header = request.headers.get("Cookie", "")
cookies = dict(part.strip().split("=", 1) for part in header.split(";") if header)
uid = cookies.get("uid")

"""Sleeps between the ticks, then sends them all in one response: the right lines, all
at the end."""
# exercise: 05-stream
# rejected: the response was buffered
# instead of: return Response.stream(ticks(), content_type="text/html; charset=utf-8")
text = "".join([tick async for tick in ticks()])
return Response(text, 200, {"Content-Type": "text/html; charset=utf-8"})

"""Puts the cookie's value into the HTML as it came: a visitor named <script> writes the
page."""
# exercise: 05-assemble
# rejected: not HTML-escaped
# instead of: greeting = f'<p id="greeting">Hello, {html.escape(uid or "guest")}</p>'
greeting = f'<p id="greeting">Hello, {uid or "guest"}</p>'

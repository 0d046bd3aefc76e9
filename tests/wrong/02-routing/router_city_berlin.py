"""Redirects by city: only Berlin, not the rule's countries."""

# exercise: 02-router
# rejected: user-vienna
rules, path = env.config, request.path
country = request.geo.country or ""

# 1. redirects: the rule's countries, unless the path is under an exception
for rule in rules["redirects"]:
    exempt = any(under(path, prefix) for prefix in rule["except"])
    if request.geo.city == "Berlin" and not exempt:
        return Response.redirect(rule["to"] + request.url.raw_path_qs, 302)

# 2. rewrites: swap the first matching prefix, keep the rest and the query string
for rule in rules["rewrites"]:
    if under(path, rule["from"]):
        new_path = rule["to"] + path.removeprefix(rule["from"])
        new_url = request.url.with_path(new_path).with_query(request.url.query)
        request = request.replace(url=new_url)
        break

# 3. the trusted header: set by the edge, replacing whatever the client sent
headers = request.headers.copy()
headers["x-client-country"] = country
request = request.replace(headers=headers)

# 4. API calls to the nearest origin, as the same request; Ashburn if it is down
if under(request.path, rules["api"]):
    for rule in rules["nearest_origin"]:
        if country in rule["countries"]:
            nearest = request.replace(url=rule["url"] + request.url.raw_path_qs)
            try:
                return await env.fetch(nearest)
            except FetchError:
                break  # that origin is down: fall back to the PoPs' origin
return await env.origin.fetch(request)

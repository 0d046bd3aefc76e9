"""Uses the country as the market, ignoring the configured markets."""
# exercise: 04-personalise
# rejected: the market
# instead of: market = env.config["markets"].get(request.geo.country, env.config["default_market"])
market = request.geo.country

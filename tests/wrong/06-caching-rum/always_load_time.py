"""Always reads the load time, whatever metric was asked for."""
# exercise: 06-rum
# rejected: the check asked for ttfb_ms
# instead of: data = metrics.get(metric)
data = metrics.get("load_ms")

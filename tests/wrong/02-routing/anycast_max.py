"""Takes the farthest PoP instead of the nearest."""

# exercise: 02-anycast
# rejected: the failure just measured
candidates = [pop for pop in edge.pops if pop != failed]
return max(candidates, key=lambda pop: world.configured_rtt(user, pop))

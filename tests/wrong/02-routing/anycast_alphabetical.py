"""Takes the first remaining PoP by name."""

# exercise: 02-anycast
# rejected: the failure just measured
return sorted(pop for pop in edge.pops if pop != failed)[0]

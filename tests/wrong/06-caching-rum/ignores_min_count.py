"""Reports every region, however few beacons it has: a p99 of a handful of loads."""
# exercise: 06-rum
# rejected: too few beacons
# instead of: if sketch.count < min_count:
if sketch.count < 1:

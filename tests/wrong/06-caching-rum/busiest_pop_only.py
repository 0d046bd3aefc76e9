"""Takes each region's percentiles from the PoP that saw most of its beacons: the loads
that went elsewhere, often the slowest, are left out."""
# exercise: 06-rum
# rejected: every PoP
best = {}
for export in exports.values():
    for region, metrics in export["regions"].items():
        data = metrics.get(metric)
        if data and data["count"] and data["count"] > best.get(region, (0, None))[0]:
            best[region] = (data["count"], sketch_from_export(data, export["relative_accuracy"]))
answer = {}
for region, (count, sketch) in best.items():
    if count < min_count:
        continue
    answer[region] = {"count": int(sketch.count)}
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        answer[region][name] = sketch.get_quantile_value(q)
return answer

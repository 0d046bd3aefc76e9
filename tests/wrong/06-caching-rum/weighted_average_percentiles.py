"""Averages the PoPs' percentiles weighted by their beacon counts: closer, and still not a
percentile of anyone's loads."""
# exercise: 06-rum
# rejected: weighted by count
per_pop = {}
for export in exports.values():
    for region, metrics in export["regions"].items():
        data = metrics.get(metric)
        if data and data["count"]:
            sketch = sketch_from_export(data, export["relative_accuracy"])
            per_pop.setdefault(region, []).append(sketch)
answer = {}
for region, sketches in per_pop.items():
    count = sum(s.count for s in sketches)
    if count < min_count:
        continue
    answer[region] = {"count": int(count)}
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        total = sum(s.get_quantile_value(q) * s.count for s in sketches)
        answer[region][name] = total / count
return answer

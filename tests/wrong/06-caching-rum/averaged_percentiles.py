"""Averages the PoPs' own percentiles: a PoP that saw a few slow loads counts as much as
one that saw thousands of fast ones."""
# exercise: 06-rum
# rejected: average of the per-PoP percentiles
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
        values = [s.get_quantile_value(q) for s in sketches]
        answer[region][name] = sum(values) / len(values)
return answer

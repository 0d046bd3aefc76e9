"""Merges the PoPs' sketches by averaging their bins as shares of each PoP's count: every
PoP weighs the same, however many beacons it saw."""
# exercise: 06-rum
# rejected: averaging its bins
shares = {}
counts = {}
for export in exports.values():
    for region, metrics in export["regions"].items():
        data = metrics.get(metric)
        if not data or not data["count"]:
            continue
        counts[region] = counts.get(region, 0) + data["count"]
        for index, n in data["bins"].items():
            shares.setdefault(region, []).append((index, n / data["count"]))
answer = {}
for region, parts in shares.items():
    if counts[region] < min_count:
        continue
    pops = sum(1 for e in exports.values() if metric in e["regions"].get(region, {}))
    mixed = {}
    for index, share in parts:
        mixed[index] = mixed.get(index, 0) + share * counts[region] / pops
    sketch = sketch_from_export({"bins": mixed, "zero_count": 0}, 0.01)
    answer[region] = {"count": int(counts[region])}
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        answer[region][name] = sketch.get_quantile_value(q)
return answer

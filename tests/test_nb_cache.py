"""Chapter 06's kit helpers without a world: the RUM check against right and wrong
answers, the rule a path picks, and the fallback while an exercise is unwritten."""

import pytest

from kit.nb.cache_checks import RumProbe, merged_percentiles, rule_for, yours_or
from kit.nb.checks import CheckFailed
from kit.services.rum import sketch_from_export

pytestmark = pytest.mark.unit


def merged(exports, metric, min_count):
    found = {}
    for export in exports.values():
        for region, metrics in export["regions"].items():
            data = metrics.get(metric)
            if data and data["count"]:
                sketch = sketch_from_export(data, export["relative_accuracy"])
                if region in found:
                    found[region].merge(sketch)
                else:
                    found[region] = sketch
    return {
        region: {"count": int(s.count)}
        | {n: s.get_quantile_value(q) for n, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}
        for region, s in found.items()
        if s.count >= min_count
    }


def averaged(exports, metric, min_count):
    answer = merged(exports, metric, min_count)
    for region, row in answer.items():
        per_pop = [
            sketch_from_export(e["regions"][region][metric], e["relative_accuracy"])
            for e in exports.values()
            if region in e["regions"]
        ]
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            row[name] = sum(s.get_quantile_value(q) for s in per_pop) / len(per_pop)
    return answer


@pytest.mark.parametrize("seed", range(5))
def test_the_rum_check_passes_merged_sketches(seed):
    RumProbe(seed).check(merged)


@pytest.mark.parametrize("seed", range(5))
def test_the_rum_check_names_averaged_percentiles(seed):
    with pytest.raises(CheckFailed, match="average of the per-PoP percentiles"):
        RumProbe(seed).check(averaged)


def test_made_up_regions_are_far_from_their_per_pop_average():
    probe = RumProbe(1)
    exports, raw = probe.made_up()
    wrong = averaged(exports, "load_ms", probe.min_count)
    true = merged_percentiles(exports, "vienna", "load_ms")
    assert wrong["vienna"]["p50"] > 3 * true["p50"]


def test_the_first_matching_rule_wins():
    rules = [{"match": "/api/items/*"}, {"match": "/api/*", "x": 1}]
    assert rule_for(rules, "/api/time") == {"match": "/api/*", "x": 1}
    assert rule_for(rules, "/page/a") == {}


def test_an_unwritten_exercise_falls_back_once(capsys):
    def cache_policy(update_s, outage_s):
        raise NotImplementedError()

    assert yours_or(cache_policy, ["default"], 2, 60) == ["default"]
    assert "cache_policy is not written yet" in capsys.readouterr().out

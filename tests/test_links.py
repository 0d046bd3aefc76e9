"""Link emulation: the mechanism choice and the tc commands, and netem where the kernel has it."""

import pytest

from kit.net import World
from kit.net.links import netem_available, probe, tc_commands
from kit.net.topology import LinkParams


def test_tc_commands_shape_bandwidth_and_add_netem_under_it():
    p = LinkParams(delay_ms=75, jitter_ms=2, loss_pct=0.5, bw_mbit=10)
    cmds = tc_commands("eth0", p, netem=True)
    assert cmds[0].startswith("tc qdisc del dev eth0 root")
    assert "htb rate 10mbit" in cmds[2]
    assert cmds[3] == "tc qdisc add dev eth0 parent 5:1 handle 10: netem delay 75ms 2ms loss 0.5%"
    # The delay line does delay, jitter and loss itself: tc only shapes bandwidth.
    assert not any("netem" in c for c in tc_commands("eth0", p, netem=False))
    assert tc_commands("eth0", LinkParams(), netem=False) == [
        "tc qdisc del dev eth0 root 2>/dev/null || true"
    ]


def test_the_choice_follows_the_kernel_and_the_override(monkeypatch):
    has_netem = netem_available()[0]
    monkeypatch.delenv("EDGELAB_LINKS", raising=False)
    assert probe().mechanism == ("netem" if has_netem else "delayline")
    monkeypatch.setenv("EDGELAB_LINKS", "delayline")
    assert probe().mechanism == "delayline" and "EDGELAB_LINKS" in probe().why
    monkeypatch.setenv("EDGELAB_LINKS", "carrier-pigeon")
    with pytest.raises(ValueError, match="choose one of netem, delayline"):
        probe()
    if not has_netem:
        with pytest.raises(RuntimeError, match="no netem"):
            probe("netem")


@pytest.mark.skipif(not netem_available()[0], reason="this kernel has no sch_netem")
def test_a_netem_world_keeps_its_latencies():
    with World(links="netem") as w:
        rtts = sorted(w.ping("user-tokyo", "origin", count=50, interval=0.02))
        assert abs(rtts[25] - w.configured_rtt("user-tokyo", "origin")) < 1.0


def test_a_delay_line_world_keeps_its_latencies_on_any_kernel():
    """Forced, so the delay line is tested on kernels with netem too (the session world
    there runs on netem)."""
    from test_cleanup import small_world

    with World(small_world("dl-forced"), links="delayline") as w:
        assert w.mechanism == "delayline"
        configured = w.configured_rtt("user-a", "user-b")
        rtts = sorted(w.ping("user-a", "user-b", count=50, interval=0.02))
        assert abs(rtts[25] - configured) < 1.0
        w.set_link("a", "b", rtt_ms=60)  # a change reaches the running line
        rtts = sorted(w.ping("user-a", "user-b", count=30, interval=0.02))
        assert abs(rtts[15] - (configured + 40)) < 1.0

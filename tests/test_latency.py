"""Interleaved latency (round-robin timing of several samplers in one process) and the `latency` stage that
times every Table 1 sampler that way."""

import itertools
import statistics

import pytest
import torch

from dcm.config import load_config
from dcm.eval.latency import above_step_limit, interleaved_latency, paired_ratio, round_quartiles, speedups
from dcm.io import read_json
from dcm.methods import table1_sets
from dcm.stages import latency
from tests.helpers import SMOKE


def _order(warmup, repeats, names="abcd"):
    order = []
    calls = {name: (lambda name=name: order.append(name)) for name in names}
    ticks = itertools.count()  # every clock read advances by 1: each call lasts 1 tick unless the clock is read
    result = interleaved_latency(calls, warmup=warmup, repeats=repeats, clock=lambda: float(next(ticks)),
                                 before=lambda name: order.append("+" + name))  # untimed: no clock read
    assert order[::2] == ["+" + name for name in order[1::2]]  # `before` right ahead of each call
    return result, order[1::2]


def test_rounds_call_every_sampler_once_in_shuffled_order_and_report_medians():
    result, order = _order(warmup=1, repeats=6)
    rounds = [order[i:i + 4] for i in range(0, len(order), 4)]
    assert rounds[0] == list("abcd") and all(sorted(r) == list("abcd") for r in rounds)  # warm-up, then each once
    predecessors = {name: {r[r.index(name) - 1] for r in rounds[1:] if r.index(name)} for name in "abcd"}
    assert all(len(p) > 1 for p in predecessors.values()), predecessors  # no call always follows the same one
    assert _order(warmup=1, repeats=6)[1] == order  # seeded: the same orders on every run
    assert all(r["seconds"] == [1.0] * 6 and r["median_s"] == 1.0 for r in result.values())


def test_medians_are_per_sampler():
    durations = {"slow": iter([5.0, 7.0, 6.0]), "fast": iter([1.0, 3.0, 2.0])}
    now = [0.0]

    def call(name):
        now[0] += next(durations[name])

    result = interleaved_latency({n: (lambda n=n: call(n)) for n in durations}, warmup=0, repeats=3,
                                 clock=lambda: now[0])
    assert (result["slow"]["median_s"], result["fast"]["median_s"]) == (6.0, 2.0)
    assert (result["fast"]["min_s"], result["fast"]["max_s"]) == (1.0, 3.0)


def test_interleaved_latency_needs_a_timed_round():
    with pytest.raises(ValueError, match="repeats"):
        interleaved_latency({"a": lambda: None}, warmup=0, repeats=0)


def _rounds(seconds: list[float]) -> dict:
    return {"seconds": seconds, "median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds)}


def test_speed_ups_pair_the_rounds_so_the_machines_drift_cancels():
    # the machine slows down 2x in round 2 for both sets: each round's ratio is 2.0; the medians' ratio is not
    per_set = {"teacher-10": _rounds([1.0, 2.0, 1.2]), "pcm-4": _rounds([0.5, 1.0, 0.6])}
    assert speedups(per_set, "teacher-10") == pytest.approx({"teacher-10": 1.0, "pcm-4": 2.0})
    assert paired_ratio(per_set, "pcm-4", "teacher-10") == pytest.approx(0.5)
    drifting = {"a": _rounds([1.0, 2.0, 3.0]), "b": _rounds([3.0, 1.0, 2.0])}  # per round 1/3, 2, 1.5
    assert paired_ratio(drifting, "a", "b") == 1.5 != drifting["a"]["median_s"] / drifting["b"]["median_s"]


def test_round_quartiles_are_the_spread_of_the_per_round_ratios():
    per_set = {"a": _rounds([1.0, 4.0, 3.0, 2.0]), "b": _rounds([1.0, 1.0, 1.0, 1.0])}
    assert round_quartiles(per_set, "a", "b") == pytest.approx((1.75, 3.25))  # inclusive: 1 + 0.75, 3 + 0.25
    assert round_quartiles({"a": _rounds([3.0]), "b": _rounds([2.0])}, "a", "b") == (1.5, 1.5)  # one round


def test_speed_up_above_the_step_count_ratio_in_most_rounds_is_a_fault():
    per_set = {"teacher-10": _rounds([0.9, 1.0, 1.1]),
               "pcm-4": _rounds([0.45, 0.5, 0.55]),  # 2.0x in every round
               "lcm-4": _rounds([0.35, 0.39, 0.45]),  # per round 2.571, 2.564, 2.444x: lower quartile 2.504x
               "dcm-4": _rounds([0.18, 0.2, 0.3]),  # 5.0, 5.0, 3.667x
               "teacher-4": _rounds([0.36, 0.40, 0.46])}  # 2.5, 2.5, 2.391x: at the limit is not above it
    assert above_step_limit(per_set, "teacher-10") == ["dcm-4", "lcm-4"]
    one_slow_round = {"teacher-10": _rounds([1.0] * 5), "pcm-4": _rounds([0.38] * 4 + [0.5])}  # 2.63x, once 2.0x
    assert above_step_limit(one_slow_round, "teacher-10") == ["pcm-4"]  # teacher's fastest / pcm's slowest is 2.0x
    noisy = {"teacher-10": _rounds([1.0] * 4), "pcm-4": _rounds([0.38, 0.38, 0.42, 0.44])}  # 2.63, 2.63, 2.38, 2.27x
    assert above_step_limit(noisy, "teacher-10") == []  # median 2.5x, half the rounds below: noise


def test_place_puts_one_samplers_networks_on_the_device_after_moving_the_others_off():
    moves = []

    class Net(torch.nn.Module):
        def to(self, device):
            moves.append((self.name, device))
            return self

    nets = {}
    for name in ("teacher", "seme", "lora"):
        nets[name] = Net()
        nets[name].name = name
    held = {"teacher-10": [nets["teacher"]], "teacher-4": [nets["teacher"]], "dcm-4": [nets["seme"], nets["lora"]]}
    latency.place(held, "teacher-4", "cuda")
    assert moves == [("seme", "cpu"), ("lora", "cpu"), ("teacher", "cuda")]


def test_latency_stage_times_every_table1_sampler_in_one_file(tmp_path, monkeypatch):
    from benchmarks.run import random_run

    cfg = load_config(SMOKE, [f"results_dir={tmp_path}", "tracking.enabled=false", "sampling.prompts=[a red circle]",
                              "sampling.latency.warmup=0", "sampling.latency.repeats=2"])
    random_run(cfg)
    placed, place = [], latency.place
    monkeypatch.setattr(latency, "place", lambda held, name, device: placed.append((name, str(device)))
                        or place(held, name, device))
    latency.run(cfg)
    sets = table1_sets(cfg)  # parked on the CPU as built, then each put on the device ahead of its timed call
    assert placed[:len(sets)] == [(n, "cpu") for n in sets]
    assert sorted(placed[len(sets):]) == sorted((n, "cpu") for n in sets + sets)  # each once per timed round
    written = read_json(tmp_path / "smoke" / "latency" / "latency.json")
    assert sorted(written["per_video"]) == sorted(table1_sets(cfg))
    assert written["reference"] == "teacher-10" and written["speedup"]["teacher-10"] == 1.0
    assert all(len(t["seconds"]) == 2 and t["median_s"] > 0 for t in written["per_video"].values())
    assert written["above_step_limit"] == above_step_limit(written["per_video"], "teacher-10")

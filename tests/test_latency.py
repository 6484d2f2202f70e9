"""Interleaved latency (round-robin timing of several samplers in one process) and the `latency` stage that
times every Table 1 sampler that way."""

import itertools
import statistics

import pytest
import torch

from dcm.config import load_config
from dcm.eval.latency import (above_step_limit, equal_call_blocks, interleaved_latency, paired_ratio,
                              round_quartiles, rounds_above_limit, speedups)
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


def test_a_block_times_back_to_back_calls_and_reports_seconds_per_call():
    now, made, prepared = [0.0], {"a": 0, "b": 0}, []

    def call(name, seconds):
        made[name] += 1
        now[0] += seconds

    calls = {"a": lambda: call("a", 2.0), "b": lambda: call("b", 0.5)}
    result = interleaved_latency(calls, warmup=1, repeats=3, clock=lambda: now[0], before=prepared.append,
                                 block={"b": 4})
    assert made == {"a": 1 + 3, "b": 1 + 3 * 4}  # warm-up: one call each; timed: a block of 4 for b
    assert sorted(prepared) == ["a"] * 4 + ["b"] * 4  # `before` once per block, not per call
    assert result["b"]["seconds"] == [0.5] * 3 and result["a"]["seconds"] == [2.0] * 3  # per call
    assert (result["a"]["calls_per_block"], result["b"]["calls_per_block"]) == (1, 4)


def test_equal_call_blocks_give_every_block_about_the_references_network_calls():
    names = ["teacher-50", "teacher-2", "bare:dcm-4", "pcm-8", "lcm-25", "bare:teacher-50"]
    assert equal_call_blocks(names, "teacher-50") == {  # 50/4 = 12.5 and 50/8 = 6.25 round to 12 and 6
        "teacher-50": 1, "teacher-2": 25, "bare:dcm-4": 12, "pcm-8": 6, "lcm-25": 2, "bare:teacher-50": 1}
    assert equal_call_blocks(["teacher-10", "dcm-3", "dcm-20"], "teacher-10") == {"teacher-10": 1, "dcm-3": 3,
                                                                                  "dcm-20": 1}  # never below 1


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


def test_speed_up_above_the_step_count_ratio_in_more_rounds_than_noise_explains_is_a_fault():
    teacher = _rounds([1.0] * 16)  # limit 2.5x for 4 of 10 steps: a round above it is one under 0.4 s
    per_set = {"teacher-10": teacher,
               "pcm-4": _rounds([0.39] * 14 + [0.41] * 2),  # 14 of 16 above: P(>= 14) = 137 / 2**16 = 0.0021
               "lcm-4": _rounds([0.39] * 13 + [0.41] * 3),  # 13 of 16: 697 / 2**16 = 0.0106, not below 0.01
               "teacher-4": _rounds([0.4] * 16),  # at the limit is not above it
               "dcm-4": _rounds([0.2] * 16)}  # 5x in every round: p = 2**-16
    assert rounds_above_limit(per_set, "teacher-10") == {"teacher-10": 0, "pcm-4": 14, "lcm-4": 13, "teacher-4": 0,
                                                         "dcm-4": 16}
    assert above_step_limit(per_set, "teacher-10") == ["dcm-4", "pcm-4"]
    assert above_step_limit(per_set, "teacher-10", alpha=0.05) == ["dcm-4", "lcm-4", "pcm-4"]
    ten = {"teacher-10": _rounds([1.0] * 10), "pcm-4": _rounds([0.3] * 9 + [0.5]), "lcm-4": _rounds([0.3] * 10)}
    assert above_step_limit(ten, "teacher-10") == ["lcm-4"]  # 10 of 10: 2**-10; 9 of 10: 11 / 2**10 = 0.0107


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
                              "sampling.latency.warmup=0", "sampling.latency.repeats=2",
                              "sampling.latency.equal_call_blocks=true"])
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
    assert {n: t["calls_per_block"] for n, t in written["per_video"].items()} == {  # 10 teacher steps / 4 steps
        n: 1 if n == "teacher-10" else 2 for n in sets}
    assert written["above_step_limit"] == above_step_limit(written["per_video"], "teacher-10")

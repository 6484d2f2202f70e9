"""The phase schedule: edges of each cut, few-step schedules by hand, the phase of an index, the refusals, and
DCM with sub-phases inside each expert against a closed-form probability-flow ODE."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from dcm.errors import DCMError
from dcm.sampling import two_expert_sample
from dcm.schedule import PhaseSchedule, uniform_edges
from dcm.solvers import edge_below

HUNYUAN = PhaseSchedule(num_steps=50, kappa=38, shift=17.0, pcm_phases=4)
OFFICIAL_PCM = PhaseSchedule(num_steps=50, kappa=38, shift=17.0, pcm_phases="steps")  # one phase per step


def test_edges_of_each_cut():
    assert HUNYUAN.edges("whole") == [50, 0]
    assert HUNYUAN.edges("experts") == [50, 38, 0]
    assert HUNYUAN.edges("pcm") == [50, 38, 25, 12, 0]  # 37.5 and 12.5 round half to even
    assert HUNYUAN.semantic_edges == [50, 38] and HUNYUAN.detail_edges == [38, 0]
    assert HUNYUAN.semantic_range == (38, 50) and HUNYUAN.detail_range == (0, 38)
    assert uniform_edges(10, 2) == [10, 5, 0]
    with pytest.raises(DCMError, match="unknown phase cut"):
        HUNYUAN.edges("thirds")


def test_dcm_schedule_is_the_authors_grid():
    # HunyuanVideo's released 4-step grid was 50, 44, 38, 19 (then 0) with kappa = 38
    assert HUNYUAN.few_step("experts", 4) == [50, 44, 38, 19, 0]
    eight = HUNYUAN.few_step("experts", 8)
    assert eight == [50, 47, 44, 41, 38, 28, 19, 10, 0]  # 28.5 -> 28 and 9.5 -> 10: half to even
    assert HUNYUAN.few_step("whole", 4) == [50, 38, 25, 12, 0]
    assert HUNYUAN.few_step("pcm", 8) == [50, 44, 38, 32, 25, 18, 12, 6, 0]


@pytest.mark.parametrize("steps,edges", [
    (2, [50, 25, 0]),
    (4, [50, 38, 25, 12, 0]),  # 37.5 and 12.5 round half to even
    (8, [50, 44, 38, 31, 25, 19, 12, 6, 0]),  # 43.75, 37.5, 31.25, 18.75, 12.5, 6.25
])
def test_pcm_with_a_phase_per_step_jumps_once_to_each_of_k_uniform_edges(steps, edges):
    assert OFFICIAL_PCM.pcm_phase_count(steps) == steps
    assert OFFICIAL_PCM.edges("pcm", steps) == edges
    assert OFFICIAL_PCM.step_problem("pcm", steps) is None
    assert OFFICIAL_PCM.few_step("pcm", steps) == edges
    assert OFFICIAL_PCM.with_pcm_phases(steps).edges("pcm") == edges  # the schedule the pcm stage trains on


def test_a_fixed_pcm_phase_count_keeps_its_edges_at_every_step_count():
    assert HUNYUAN.pcm_phase_count(8) == 4 and HUNYUAN.edges("pcm", 8) == [50, 38, 25, 12, 0]
    assert HUNYUAN.few_step("pcm", 8) != OFFICIAL_PCM.few_step("pcm", 8)  # two steps per phase, not eight phases
    assert "not a multiple of the 4 phases" in HUNYUAN.step_problem("pcm", 2)
    assert OFFICIAL_PCM.step_problem("pcm", 2) is None


def test_pcm_with_a_phase_per_step_refuses_more_phases_than_grid_intervals():
    problem = OFFICIAL_PCM.step_problem("pcm", 51)
    assert "PCM's 51 phases: a phase count must lie in 1..50" in problem
    assert "(pcm.phases=steps, schedule.num_steps=50)" in problem
    with pytest.raises(DCMError, match="pcm.phases=steps: PCM's edges follow the sampling step count"):
        OFFICIAL_PCM.edges("pcm")


def test_phase_of_an_index_switches_at_kappa():
    assert HUNYUAN.phase_of(50) == "semantic" and HUNYUAN.phase_of(39) == "semantic"
    assert HUNYUAN.phase_of(38) == "detail" and HUNYUAN.phase_of(0) == "detail"
    with pytest.raises(DCMError, match="outside 0..50"):
        HUNYUAN.phase_of(51)


@pytest.mark.parametrize("cut,steps,needle", [
    ("experts", 5, "not a multiple of the 2 phases"),
    ("experts", 0, "at least 1"),
    ("experts", -2, "at least 1"),
    ("pcm", 6, "not a multiple of the 4 phases"),
    ("whole", 51, "shortest phase of edges [50, 0] has 50"),
])
def test_step_counts_a_cut_cannot_take(cut, steps, needle):
    assert needle in HUNYUAN.step_problem(cut, steps)
    with pytest.raises(DCMError, match="sampling steps"):
        HUNYUAN.few_step(cut, steps)


def test_a_short_phase_is_refused_naming_kappa():
    near_end = HUNYUAN.at_kappa(48)
    problem = near_end.step_problem("experts", 8)
    assert "shortest phase of edges [50, 48, 0] has 2" in problem and "schedule.kappa=48" in problem
    assert near_end.step_problem("experts", 4) is None


def test_sigmas_are_the_flow_matching_grid_and_the_switch_sits_at_kappa():
    phases = PhaseSchedule(10, 6, 1.0, 2)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0)
    scheduler.set_timesteps(10)
    np.testing.assert_allclose(phases.sigmas.numpy(), scheduler.sigmas.flip(0).numpy())
    assert phases.sigmas[0] == 0 and phases.sigmas[-1] == 1
    assert phases.sigma_kappa == pytest.approx(float(phases.sigmas[6]))


def test_sub_phases_cut_each_experts_phase_uniformly():
    two = replace(HUNYUAN, expert_phases=2)
    assert two.edges("experts") == [50, 44, 38, 19, 0]
    assert two.semantic_edges == [50, 44, 38] and two.detail_edges == [38, 19, 0]
    assert two.semantic_range == HUNYUAN.semantic_range and two.detail_range == HUNYUAN.detail_range
    assert two.few_step("experts", 4) == [50, 44, 38, 19, 0]  # one step per sub-phase: edge to edge
    assert two.few_step("experts", 8) == [50, 47, 44, 41, 38, 28, 19, 10, 0]
    assert replace(HUNYUAN, expert_phases=3).edges("experts") == [50, 46, 42, 38, 25, 13, 0]  # 46.0, 42.0; 25.3, 12.7
    problem = two.step_problem("experts", 2)
    assert "not a multiple of the 4 phases of edges [50, 44, 38, 19, 0]" in problem
    assert "(schedule.kappa=38, schedule.expert_phases=2, schedule.num_steps=50)" in problem


def test_more_sub_phases_than_an_experts_grid_intervals_are_refused():
    crowded = PhaseSchedule(10, 2, 1.0, 2, expert_phases=3)
    assert "the detail phase [2, 0] has 2" in crowded.expert_phases_problem()
    assert "the semantic phase [10, 9] has 1" in crowded.at_kappa(9).expert_phases_problem()
    assert "schedule.expert_phases=3 sub-phases" in crowded.step_problem("experts", 6)
    with pytest.raises(DCMError, match="the detail phase"):
        crowded.edges("experts")
    assert PhaseSchedule(10, 3, 1.0, 2, expert_phases=3).expert_phases_problem() is None


MEAN, STD = 0.3, 0.5  # 1-D data x0 ~ N(MEAN, STD^2): its flow-matching ODE is known in closed form


def _flow(x, sigma_from, sigma_to, std=STD):
    """The probability-flow map of x_sigma = sigma noise + (1 - sigma) x0: it keeps x's standard score."""
    def scale(sigma):
        return (sigma ** 2 + (1 - sigma) ** 2 * std ** 2) ** 0.5
    return (1 - sigma_to) * MEAN + scale(sigma_to) * (x - (1 - sigma_from) * MEAN) / scale(sigma_from)


def _perfect_student(sigmas, edges, std):
    """A phased consistency student with no error: from x at grid level n, the velocity of the straight jump to the
    ODE's point at the phase edge below n (what training on `edges` drives it to)."""
    def velocity(x, sigma, cond):
        n = torch.argmin((sigmas[:, None] - sigma[None, :]).abs(), dim=0)
        s_n, s_edge = sigmas[n], sigmas[edge_below(n, edges)]
        return (_flow(x, s_n, s_edge, std) - x) / (s_edge - s_n)
    return velocity


@pytest.mark.parametrize("std,sub_phases,exact", [
    (0.0, 1, True),  # a straight path (one data point): every sampler is exact
    (STD, 1, False),  # the paper's DCM: two steps per phase, the first a partial step along an edge-jump velocity
    (STD, 2, True),  # two sub-phases per expert: each of the 4 steps lands on the edge its expert jumps to
])
def test_four_step_dcm_is_exact_with_a_perfect_student_only_when_it_jumps_edge_to_edge(std, sub_phases, exact):
    phases = replace(HUNYUAN, expert_phases=sub_phases)
    sigmas = phases.sigmas
    noise = torch.linspace(-2.5, 2.5, 11, dtype=torch.float64)
    out = two_expert_sample(_perfect_student(sigmas, phases.semantic_edges, std),
                            _perfect_student(sigmas, phases.detail_edges, std), noise, None, sigmas,
                            phases.few_step("experts", 4), phases.sigma_kappa)
    error = (out - _flow(noise, 1.0, 0.0, std)).abs().max().item()
    assert error < 1e-12 if exact else error > 1e-3, error

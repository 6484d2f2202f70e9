"""Fig. 2 probe: bucketing by noise level, a gradient norm that leaves .grad alone, and training that is the
same with the probe on and off."""

import copy

import pytest
import torch

from dcm import noise_probe
from dcm.consistency import PhasedConsistency
from dcm.errors import DCMError
from dcm.experts import Expert
from dcm.io import read_json
from dcm.noise_probe import NoiseProbe, bucket_ranges, gradient_norm, probe_batches
from dcm.solvers import teacher_sigmas
from dcm.training import TrainLoop, adamw
from dcm.trajectories import PairSampler, TrajectoryCache
from tests.helpers import write_cache

N = 6


def test_buckets_are_equal_index_ranges_covering_the_grid():
    assert bucket_ranges(10, 3) == [(0, 3), (3, 7), (7, 10)]  # round(10/3) = 3, round(20/3) = 7
    assert bucket_ranges(50, 5) == [(0, 10), (10, 20), (20, 30), (30, 40), (40, 50)]
    assert bucket_ranges(4, 4) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    for bad in (0, 11):
        with pytest.raises(DCMError, match="vcm.probe_buckets"):
            bucket_ranges(10, bad)


@pytest.fixture
def cache(backbone, cond, tmp_path):
    torch.manual_seed(1)
    latents = torch.randn(2, N + 1, *backbone.latent_shape).half()
    write_cache(tmp_path / "cache", latents, cond, ["a red circle moving left", "a blue square moving up"], 1)
    return TrajectoryCache.load(tmp_path / "cache")


def test_probe_batches_hold_pairs_from_their_bucket_only(cache):
    ranges = bucket_ranges(N, 3)  # (0, 2], (2, 4], (4, 6]
    batches = probe_batches(cache, ranges, batch_size=16, seed=0)
    for (a, b), (x_n, x_prev, n, _) in zip(ranges, batches):
        assert ((n > a) & (n <= b)).all() and set(n.tolist()) == set(range(a + 1, b + 1))
        latents = cache.latents[:]
        k = [int(torch.nonzero((latents[:, i].float() == x_n[j]).flatten(1).all(1))[0]) for j, i in enumerate(n)]
        assert torch.equal(x_prev, latents[k, n - 1].float())
    again = probe_batches(cache, ranges, batch_size=16, seed=0)
    assert all(torch.equal(p[2], q[2]) for p, q in zip(batches, again))  # fixed across calls


def test_gradient_norm_is_the_closed_form_and_leaves_grad_alone():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    v = torch.nn.Parameter(torch.tensor([5.0]))
    w.grad = torch.tensor([7.0, 7.0])
    loss = (w * torch.tensor([3.0, 4.0])).sum() + 0 * v.sum()  # d/dw = (3, 4), d/dv = 0: norm 5
    assert gradient_norm(loss, [w, v]) == pytest.approx(5.0)
    assert torch.equal(w.grad, torch.tensor([7.0, 7.0])) and v.grad is None


def _training(backbone, net, cache, tmp_path, probe_every: int | None, steps: int = 4):
    """Train a copy of `net` for `steps` steps on `cache`, with or without a probe; (weights, metrics, probe)."""
    student = Expert(copy.deepcopy(net).train().requires_grad_(True))
    sigmas = teacher_sigmas(N, 1.0)
    objective = PhasedConsistency(student=student.velocity_fn(backbone), target=student.velocity_fn(backbone),
                                  sigmas=sigmas, edges=[N, 3, 0], loss="huber", huber_c=0.001)
    probe = None
    if probe_every is not None:
        ranges = bucket_ranges(N, 3)
        probe = NoiseProbe(loss_fn=lambda b: objective.generator_loss(b, None)[1]["consistency"],
                           params=list(student.parameters()), batches=probe_batches(cache, ranges, 4, seed=0),
                           ranges=ranges, sigmas=sigmas, every=probe_every, last_step=steps,
                           path=tmp_path / "noise_probe.json")
    loop = TrainLoop(student=student, optimizer=adamw(student.parameters(), 1e-3), objective=objective,
                     sample_batch=PairSampler(cache, 0, N, 4), out_dir=tmp_path / "run", steps=steps, seed=0,
                     checkpoint_every=100, grad_clip=1.0, on_step=probe)
    history = loop.run()
    return {k: v.clone() for k, v in student.state_dict().items()}, history, probe


def test_probe_does_not_change_training_and_writes_its_json(backbone, net, cache, tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(noise_probe.tracking, "current", lambda: type("R", (), {
        "log_metrics": staticmethod(lambda metrics, step: logged.append((step, metrics)))})())
    plain, plain_history, _ = _training(backbone, net, cache, tmp_path / "off", None)
    probed, probed_history, probe = _training(backbone, net, cache, tmp_path / "on", probe_every=3)
    assert plain.keys() == probed.keys() and all(torch.equal(plain[k], probed[k]) for k in plain)
    assert plain_history == probed_history
    doc = read_json(tmp_path / "on" / "noise_probe.json")
    assert doc["steps"] == [3, 4]  # every 3rd step and the last one (the stage adds step 0 itself)
    assert [b["index_range"] for b in doc["buckets"]] == [[0, 2], [2, 4], [4, 6]]
    sigmas = teacher_sigmas(N, 1.0)
    assert doc["buckets"][1]["sigma_range"] == pytest.approx([float(sigmas[2]), float(sigmas[4])])
    assert len(doc["loss"]) == len(doc["grad_norm"]) == 2 and all(len(r) == 3 for r in doc["loss"])
    assert all(v > 0 for row in doc["loss"] + doc["grad_norm"] for v in row)
    probe_logs = [(step, m) for step, m in logged if any(k.startswith("probe/") for k in m)]
    assert [step for step, _ in probe_logs] == [3, 4]
    assert probe_logs[0][1]["probe/loss/b02"] == doc["loss"][0][2]
    assert probe_logs[1][1]["probe/grad_norm/b00"] == doc["grad_norm"][1][0]
    # the probe at the final weights measures what a fresh evaluation of the same loss gives
    losses, _ = probe.measure()
    assert losses == doc["loss"][-1]


def test_probe_resumes_from_its_json_and_refuses_other_buckets(backbone, net, cache, tmp_path):
    _, _, probe = _training(backbone, net, cache, tmp_path, probe_every=2)
    reread = NoiseProbe(loss_fn=probe.loss_fn, params=probe.params, batches=probe.batches, ranges=probe.ranges,
                        sigmas=probe.sigmas, every=2, last_step=4, path=probe.path)
    assert reread.to_json() == probe.to_json() and reread.to_json()["steps"] == [2, 4]
    with pytest.raises(DCMError, match="other probe buckets"):
        NoiseProbe(loss_fn=probe.loss_fn, params=probe.params, batches=probe.batches[:2], ranges=bucket_ranges(N, 2),
                   sigmas=probe.sigmas, every=2, last_step=4, path=probe.path)


def test_measure_restores_the_global_rng_and_every_grad(cache, tmp_path):
    w = torch.nn.Parameter(torch.ones(3))
    w.grad = torch.full((3,), 9.0)
    ranges = bucket_ranges(N, 2)
    probe = NoiseProbe(loss_fn=lambda b: (w * torch.randn(3)).sum() + 0 * b[0].sum(), params=[w],
                       batches=probe_batches(cache, ranges, 2, seed=0), ranges=ranges, sigmas=teacher_sigmas(N, 1.0),
                       every=1, last_step=1, path=tmp_path / "p.json")
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    _, norms = probe.measure()
    assert torch.equal(torch.rand(1), expected_next)  # the loss drew from the global RNG inside fork_rng
    assert torch.equal(w.grad, torch.full((3,), 9.0))
    torch.manual_seed(123)
    draws = [torch.randn(3).norm().item() for _ in ranges]  # d/dw of (w * r).sum() is r
    assert norms == pytest.approx(draws)

"""Precision: float32 master weights under bfloat16 autocast train SemE and DetE (LoRA + GAN) on small random
pipelines of the three real backbones, loaded in bfloat16 as the configs load them; float16 only with a loss
scaler; a non-finite loss or gradient stops the stage and publishes nothing."""

from collections import Counter

import pytest
import torch

from dcm.backbones import pretrained_adapter
from dcm.consistency import Adversarial, PhasedConsistency
from dcm.discriminator import Discriminator
from dcm.distillation import feature_levels
from dcm.errors import DCMError
from dcm.experts import Expert, attach_detail_expert
from dcm.outputs import stage_output
from dcm.schedule import PhaseSchedule
from dcm.training import DiscriminatorStep
from dcm.training import TrainLoop, adamw
from tests.test_backbones import BUILDERS, SHAPE, pipeline  # noqa: F401 (the fixture)

N, KAPPA = 8, 4
PHASES = PhaseSchedule(N, KAPPA, 3.0, 2)
PROMPTS = ["a red cat runs", "the dog walks in the city"]


def pair_sampler(backbone, cond, lo, hi, batch=2):
    """Random (x_n, x_{n-1}, n, cond) with n in (lo, hi]: stands in for the trajectory cache."""
    def sample(generator):
        x = torch.randn(batch, *backbone.latent_shape, generator=generator)
        n = torch.randint(lo + 1, hi + 1, (batch,), generator=generator)
        return x, x + 0.01 * torch.randn(x.shape, generator=generator), n, cond[:batch]
    return sample


def train(student, objective, sampler, work, steps=2, lr=1e-4, discriminator=None, dtype=torch.bfloat16, **kw):
    return TrainLoop(student=student, optimizer=adamw(student.parameters(), lr), objective=objective,
                     sample_batch=sampler, out_dir=work, steps=steps, seed=0, checkpoint_every=steps, grad_clip=1.0,
                     discriminator=discriminator, compute_dtype=dtype, strategy="none", **kw).run()


def snapshot(module):
    return {n: p.detach().float().clone() for n, p in module.named_parameters() if p.requires_grad}


def changed(before, module):
    now = dict(module.named_parameters())
    return [n for n, p in before.items() if not torch.equal(p, now[n].detach().float())]


def test_seme_and_dete_learn_under_bf16_autocast(pipeline, tmp_path):  # noqa: F811
    name, path = pipeline
    backbone = pretrained_adapter(name)({"pretrained": str(path), "dtype": "bfloat16", "device": "cpu", **SHAPE})
    assert backbone.compute_dtype == torch.bfloat16  # compute_dtype defaults to the storage dtype
    teacher = backbone.load_network(path / "transformer").eval().requires_grad_(False)
    assert {p.dtype for p in teacher.parameters()} >= {torch.bfloat16}  # Wan also keeps scale_shift_table fp32
    cond = backbone.encode_prompts(PROMPTS)
    sigmas = PHASES.sigmas

    student = Expert(backbone.load_network(path / "transformer").train().requires_grad_(True))
    seme = PhasedConsistency(student.velocity_fn(backbone), student.velocity_fn(backbone), sigmas, PHASES.semantic_edges,
                             "huber", 0.001, tc_stride=1)
    before = snapshot(student)
    history = train(student, seme, pair_sampler(backbone, cond, KAPPA, N), tmp_path / "seme")
    assert all(torch.isfinite(torch.tensor([h["loss"], h["grad_norm"], h["consistency"]])).all() for h in history)
    assert {p.dtype for p in student.parameters()} == {torch.float32}  # float32 masters of every trained weight
    assert len(changed(before, student)) > 0.9 * len(before)

    backbone.save_network(student.net, tmp_path / "seme-net")
    net = backbone.load_network(tmp_path / "seme-net")  # the frozen SemE in its storage dtype, as dete loads it
    loaded = Counter(p.dtype for p in net.parameters())
    assert loaded[torch.bfloat16] > 0
    expert = attach_detail_expert(net, backbone, rank=2, alpha=4)
    width, levels = feature_levels(backbone, teacher, cond, 1)
    adversarial = Adversarial(backbone, teacher, Discriminator(width, levels), 1, (0, KAPPA), sigmas, 0.5, 1.0)
    d_opt = adamw(adversarial.discriminator.parameters(), 1e-3, betas=(0.0, 0.999))
    dete = PhasedConsistency(expert.velocity_fn(backbone), expert.velocity_fn(backbone), sigmas, PHASES.detail_edges,
                             "huber", 0.001, adversarial=adversarial)
    before, heads = snapshot(expert), snapshot(adversarial.discriminator)
    history = train(expert, dete, pair_sampler(backbone, cond, 0, KAPPA), tmp_path / "dete", lr=1e-3,
                    discriminator=DiscriminatorStep(adversarial.discriminator, d_opt, adversarial.discriminator_loss),
                    frozen=(teacher,))
    assert all(torch.isfinite(torch.tensor([h[k] for k in ("loss", "g_adv", "fm", "d_loss", "grad_norm")])).all()
               for h in history)
    moved = changed(before, expert)
    assert any("lora_B" in n for n in moved) and any(n.startswith("detail.") for n in moved)
    assert len(changed(heads, adversarial.discriminator)) == len(heads)
    assert Counter(p.dtype for p in expert.parameters() if not p.requires_grad) == loaded  # frozen SemE not upcast
    assert {p.dtype for p in expert.parameters() if p.requires_grad} == {torch.float32}


def _wan_student(tmp_path, dtype):
    torch.manual_seed(0)
    BUILDERS["wan"](tmp_path / "wan")
    backbone = pretrained_adapter("wan")({"pretrained": str(tmp_path / "wan"), "dtype": dtype, "device": "cpu",
                                          **SHAPE})
    return backbone, Expert(backbone.load_network(tmp_path / "wan" / "transformer").train().requires_grad_(True))


def test_fp32_masters_keep_the_updates_pure_bf16_rounds_away(tmp_path):
    """lr 1e-6 (the paper's), 10 steps: bf16 weights updated in place lose almost every update (facts.md:
    ~2% change); float32 masters keep all of them."""
    backbone, student = _wan_student(tmp_path, "bfloat16")
    cond = backbone.encode_prompts(PROMPTS)
    sampler = pair_sampler(backbone, cond, KAPPA, N)
    seme = PhasedConsistency(student.velocity_fn(backbone), student.velocity_fn(backbone), PHASES.sigmas,
                             PHASES.semantic_edges, "huber", 0.001)
    bf16 = {n: p.detach().clone() for n, p in student.named_parameters()}
    pure = torch.optim.AdamW(student.parameters(), lr=1e-6)  # what the code did before: weights, grads, moments bf16
    generator = torch.Generator().manual_seed(0)
    for _ in range(10):
        pure.zero_grad()
        with backbone.autocast(torch.device("cpu")):
            seme.generator_loss(sampler(generator), generator)[0].backward()
        pure.step()
    now = dict(student.named_parameters())
    kept_pure = sum(int((now[n] != p).sum()) for n, p in bf16.items()) / sum(p.numel() for p in bf16.values())
    with torch.no_grad():
        for n, p in now.items():
            p.copy_(bf16[n])
    start = {n: p.float() for n, p in bf16.items()}
    train(student, seme, sampler, tmp_path / "masters", steps=10, lr=1e-6)
    now = dict(student.named_parameters())
    kept_masters = sum(int((now[n] != p).sum()) for n, p in start.items()) / sum(p.numel() for p in start.values())
    assert kept_pure < 0.1 and kept_masters > 0.9, (kept_pure, kept_masters)


def test_float16_trains_with_a_loss_scaler_and_float32_compute_needs_float32_storage(tmp_path):
    backbone, student = _wan_student(tmp_path, "float16")
    assert backbone.compute_dtype == torch.float16
    cond = backbone.encode_prompts(PROMPTS)
    seme = PhasedConsistency(student.velocity_fn(backbone), student.velocity_fn(backbone), PHASES.sigmas,
                             PHASES.semantic_edges, "huber", 0.001)
    before = snapshot(student)
    history = train(student, seme, pair_sampler(backbone, cond, KAPPA, N), tmp_path / "fp16", steps=3,
                    dtype=torch.float16)
    assert all(torch.isfinite(torch.tensor([h["loss"], h["grad_norm"]])).all() for h in history)
    assert changed(before, student)
    with pytest.raises(DCMError, match="backbone.compute_dtype=float32 with backbone.dtype=bfloat16"):
        pretrained_adapter("wan")({"pretrained": str(tmp_path / "wan"), "dtype": "bfloat16",
                                   "compute_dtype": "float32", "device": "cpu", **SHAPE})


class NonFinite:
    """A quadratic loss that turns non-finite (the loss itself, or only its gradient) at step `at`."""

    def __init__(self, net, at, where):
        self.net, self.at, self.where, self.calls = net, at, where, 0

    def generator_loss(self, batch, generator):
        self.calls += 1
        loss = self.net(batch[0]).pow(2).mean()
        if self.calls == self.at:
            w = self.net.weight
            loss = loss * float("nan") if self.where == "loss" else loss + (w - w.detach()).abs().sum().sqrt()
        return loss, {}


@pytest.mark.parametrize("where,message", [("loss", "non-finite loss at step 3"),
                                           ("gradient", "non-finite generator gradient .* at step 3")])
def test_non_finite_loss_or_gradient_stops_and_publishes_nothing(tmp_path, where, message):
    net = torch.nn.Linear(4, 4)
    out = tmp_path / "seme"
    with pytest.raises(DCMError, match=message):
        with stage_output(out, {}) as work:
            TrainLoop(student=net, optimizer=adamw(net.parameters(), 1e-2), objective=NonFinite(net, 3, where),
                      sample_batch=lambda g: (torch.randn(4, 4, generator=g),), out_dir=work, steps=5, seed=0,
                      checkpoint_every=2, strategy="none").run()
            torch.save({}, work / "network.pt")  # what the stage would publish
    assert not out.exists()
    assert all(torch.isfinite(p).all() for p in net.parameters())  # the bad step was never applied

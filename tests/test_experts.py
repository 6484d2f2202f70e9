"""Two-expert sampling at the kappa boundary and the parameter-efficient detail expert."""

import contextlib

import pytest
import torch

from dcm.consistency import consistency_pair
from dcm.errors import DCMError
from dcm.experts import Expert, attach_detail_expert, detail_state_dict, lora_layers
from dcm.losses import pseudo_huber
from dcm.sampling import two_expert_sample
from dcm.solvers import teacher_sigmas


def test_two_expert_sampling_runs_semantic_above_kappa_and_detail_at_and_below_in_one_phase():
    calls, phases = [], []
    semantic = lambda x, s, c: calls.append(("semantic", float(s[0]), len(phases))) or torch.ones_like(x)
    detail = lambda x, s, c: calls.append(("detail", float(s[0]), len(phases))) or -torch.ones_like(x)

    @contextlib.contextmanager
    def detail_phase():
        phases.append("entered")
        yield

    sigmas = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    out = two_expert_sample(semantic, detail, torch.zeros(1, 2), torch.zeros(1, 1), sigmas, [4, 3, 2, 1, 0],
                            sigma_kappa=0.5, detail_phase=detail_phase)
    assert calls == [("semantic", 1.0, 0), ("semantic", 0.75, 0), ("detail", 0.5, 1), ("detail", 0.25, 1)]
    assert phases == ["entered"]  # the detail expert switched in once, not at each of its steps
    # x(sigma=0) = x(1) - sum of v * d sigma: two semantic steps of +1, two detail steps of -1, each 0.25 long
    assert torch.allclose(out, torch.zeros(1, 2))


def test_a_phase_of_the_detail_expert_runs_it_merged_and_restores_the_shared_weights(backbone, net, cond):
    detail = attach_detail_expert(net, backbone, rank=2, alpha=4)
    for p in detail.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.05)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, sigma = torch.randn(2, *backbone.latent_shape), torch.tensor([0.3, 0.2])
    per_call = detail(backbone, x, sigma, cond)  # LoRA flags on for the call
    with detail.phase():
        held = [detail(backbone, x, sigma, cond) for _ in range(2)]
        assert lora_layers(net) == []  # merged into plain layers: no LoRA matmuls, no peft wrappers
    assert all(torch.allclose(h, per_call, atol=1e-5) for h in held)
    after = net.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)  # bit for bit
    semantic = Expert(net)(backbone, x, sigma, cond)
    assert not torch.allclose(semantic, per_call, atol=1e-4)  # SemE again after it
    with detail.semantic_phase(Expert(net)):
        assert lora_layers(net) == [] and torch.equal(Expert(net)(backbone, x, sigma, cond), semantic)
    assert len(lora_layers(net)) == len(detail.detail.adapters)  # the wrappers are back


def test_the_merged_weights_follow_the_expert_when_it_moves_and_stay_out_of_its_state_dict(backbone, net, cond):
    detail = attach_detail_expert(net, backbone, rank=2, alpha=4)
    keys = set(detail.state_dict())
    x, sigma = torch.randn(2, *backbone.latent_shape), torch.tensor([0.3, 0.2])
    with detail.phase():
        detail(backbone, x, sigma, cond)
    assert set(detail.state_dict()) == keys  # the merged copies are not saved
    detail.to(torch.float64)  # as the latency stage moves a parked sampler (there: CPU <-> GPU)
    merged = detail.detail._merged_weights()
    assert all(w.dtype == torch.float64 for w in merged)  # moved along, not left behind
    for layer, weight in zip(detail.detail.adapters, merged):
        want = layer.get_base_layer().weight + layer.get_delta_weight("detail")
        assert torch.allclose(weight, want, atol=1e-6)


def test_detail_expert_starts_equal_to_semantic_and_leaves_it_untouched(backbone, net, cond):
    x, sigma = torch.randn(2, *backbone.latent_shape), torch.tensor([0.3, 0.2])
    before = backbone.predict(net, x, sigma, cond).detach()
    detail = attach_detail_expert(net, backbone, rank=2, alpha=4)
    semantic = Expert(net)
    assert torch.allclose(detail(backbone, x, sigma, cond), before, atol=1e-6)  # LoRA B starts at 0
    opt = torch.optim.SGD([p for p in detail.parameters() if p.requires_grad], lr=1.0)
    detail(backbone, x, sigma, cond).pow(2).mean().backward()
    opt.step()
    assert not torch.allclose(detail(backbone, x, sigma, cond), before, atol=1e-4)
    assert torch.equal(semantic(backbone, x, sigma, cond), before)


def test_only_lora_and_new_timestep_layers_receive_gradients(backbone, net, cond):
    detail = attach_detail_expert(net, backbone, rank=2, alpha=4)
    sigmas = teacher_sigmas(10, 1.0).float()
    x_n, x_prev, n = torch.randn(2, *backbone.latent_shape), torch.randn(2, *backbone.latent_shape), torch.tensor([5, 3])
    pred, tgt = consistency_pair(detail.velocity_fn(backbone), detail.velocity_fn(backbone), x_n, x_prev, n, cond, sigmas,
                                 [6, 0])
    pseudo_huber(pred, tgt, 1e-3).backward()
    with_grad = {k for k, p in detail.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad, "the detail expert received no gradient"
    assert all("lora_" in k or k.startswith("detail.") for k in with_grad), with_grad
    assert any("lora_" in k for k in with_grad) and any(k.startswith("detail.") for k in with_grad)
    frozen = [k for k, p in detail.named_parameters() if "lora_" not in k and not k.startswith("detail.")]
    assert all(dict(detail.named_parameters())[k].grad is None for k in frozen)
    assert set(detail_state_dict(detail)) == {k for k, p in detail.named_parameters() if p.requires_grad}


def test_detail_layers_are_copies_named_by_the_backbone(backbone, net):
    detail = attach_detail_expert(net, backbone, rank=2, alpha=4)
    names = {k.split(".")[2] for k in detail_state_dict(detail) if k.startswith("detail.")}
    assert names == {"condition_embedder", "proj_out", "scale_shift_table"}  # norm_out has no parameters
    assert detail.detail.layers["proj_out"] is not net.proj_out


def test_detail_layers_can_be_a_chosen_part_of_the_backbones(backbone, net, cond):
    chosen = ["condition_embedder.time_embedder", "scale_shift_table"]
    detail = attach_detail_expert(net, backbone, rank=2, alpha=4, timestep_layers=chosen)
    copied = {k: v for k, v in detail_state_dict(detail).items() if k.startswith("detail.")}
    assert {k.split(".")[2] for k in copied} == {"condition_embedder__time_embedder", "scale_shift_table"}
    assert sum(v.numel() for v in copied.values()) == (sum(p.numel() for p in net.condition_embedder.time_embedder
                                                           .parameters()) + net.scale_shift_table.numel())
    original, shared = net.condition_embedder.time_embedder, net.condition_embedder.time_proj
    for p in detail.detail.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x, sigma = torch.randn(2, *backbone.latent_shape), torch.tensor([0.3, 0.2])
    with detail.detail.active(net):  # the copy sits inside the shared condition embedder while DetE runs
        assert net.condition_embedder.time_embedder is not original
        assert net.condition_embedder.time_proj is shared  # not chosen: not copied
    assert net.condition_embedder.time_embedder is original
    assert not torch.allclose(detail(backbone, x, sigma, cond), Expert(net)(backbone, x, sigma, cond))


def test_detail_layers_outside_the_backbones_timestep_layers_are_refused(backbone, net):
    with pytest.raises(DCMError, match="dete.timestep_layers: 'blocks.0' is not one of the backbone's timestep"):
        attach_detail_expert(net, backbone, rank=2, alpha=4, timestep_layers=["blocks.0"])
    with pytest.raises(DCMError, match="the network has no layer 'condition_embedder.nothing'"):
        attach_detail_expert(net, backbone, rank=2, alpha=4, timestep_layers=["condition_embedder.nothing"])


def _through_diffusers(detail, backbone, x, sigma, cond):
    """The detail expert as diffusers' adapter API runs it (the reference the fast flags must match)."""
    detail.detail._swap()
    detail.net.enable_adapters()
    try:
        return backbone.predict(detail.net, x, sigma, cond)
    finally:
        detail.net.disable_adapters()
        detail.detail._swap()


def test_fast_switch_is_bit_identical_to_diffusers_adapter_toggling(backbone, net, cond):
    x, sigma = torch.randn(2, *backbone.latent_shape), torch.tensor([0.3, 0.2])
    detail = attach_detail_expert(net, backbone, rank=2, alpha=4)
    with torch.no_grad():
        for name, p in detail.named_parameters():
            if "lora_B" in name or name.startswith("detail."):
                p.add_(0.05 * torch.randn_like(p))  # trained-looking LoRA and copied layers, so both matter
        semantic_before = backbone.predict(net, x, sigma, cond)
        fast = detail(backbone, x, sigma, cond)
        reference = _through_diffusers(detail, backbone, x, sigma, cond)
        assert not torch.allclose(fast, semantic_before, atol=1e-3)  # the detail expert differs from SemE
        assert torch.equal(fast, reference)
        assert torch.equal(backbone.predict(net, x, sigma, cond), semantic_before)  # switched back exactly
        assert not any(layer.disable_adapters is False for layer in detail.detail.adapters)
    assert len(detail.detail.adapters) == 2 * 2 * 4  # 2 blocks x (self + cross attention) x q, k, v, out


def test_switching_leaves_lora_trainable_and_the_semantic_weights_frozen(backbone, net, cond):
    detail = attach_detail_expert(net, backbone, rank=2, alpha=4)
    x, sigma = torch.randn(2, *backbone.latent_shape), torch.tensor([0.3, 0.2])
    with torch.no_grad():
        detail(backbone, x, sigma, cond)
    trainable = {k for k, p in detail.named_parameters() if p.requires_grad}
    assert trainable == set(detail_state_dict(detail))

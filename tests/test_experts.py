"""Expert switching at the kappa boundary and the parameter-efficient detail expert."""

import torch

from dcm.consistency import consistency_pair
from dcm.experts import Expert, attach_detail_expert, detail_state_dict, switch_experts
from dcm.losses import pseudo_huber
from dcm.solvers import teacher_sigmas


def test_switch_uses_semantic_above_kappa_and_detail_at_and_below():
    semantic = lambda x, s, c: torch.ones_like(x)
    detail = lambda x, s, c: -torch.ones_like(x)
    velocity = switch_experts(semantic, detail, sigma_kappa=0.5)
    x = torch.zeros(3, 2)
    out = velocity(x, torch.tensor([0.9, 0.5, 0.1]), torch.zeros(3, 1))
    assert out[:, 0].tolist() == [1.0, -1.0, -1.0]
    assert (velocity(x, torch.tensor(0.6), torch.zeros(3, 1)) == 1).all()


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


def _through_diffusers(detail, backbone, x, sigma, cond):
    """The detail expert as diffusers' adapter API runs it (the reference the fast flags must match)."""
    detail.detail._swap(detail.net)
    detail.net.enable_adapters()
    try:
        return backbone.predict(detail.net, x, sigma, cond)
    finally:
        detail.net.disable_adapters()
        detail.detail._swap(detail.net)


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

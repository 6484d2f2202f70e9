"""Activation checkpointing (backbone.gradient_checkpointing): on in the networks the backbones build or load,
the blocks' activations no longer saved for backward (counted with autograd's saved-tensor hooks), with the same
loss and gradients as without it; the GAN path (gradients through the frozen teacher's block features) included."""

import copy

import torch

from dcm.backbones import pretrained_adapter
from dcm.backbones.tiny import TinyBackbone
from dcm.data.procedural import vocabulary
from dcm.experts import attach_detail_expert
from tests.conftest import TINY_MODEL
from tests.test_backbones import SHAPE, build_wan


def _loss_and_grads(backbone, net, x, sigma, cond):
    """Loss, gradients and the bytes autograd saved for backward outside checkpointed regions."""
    net.zero_grad()
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = backbone.predict(net, x, sigma, cond).pow(2).mean()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    return loss.detach(), grads, sum(storages.values())


def _assert_same_training_signal(backbone, plain, checkpointed, x, sigma, cond):
    assert checkpointed.is_gradient_checkpointing and not plain.is_gradient_checkpointing
    loss, grads, saved = _loss_and_grads(backbone, checkpointed, x, sigma, cond)
    plain_loss, plain_grads, plain_saved = _loss_and_grads(backbone, plain, x, sigma, cond)
    assert saved < plain_saved / 2  # the blocks' activations are recomputed, not stored
    assert torch.equal(loss, plain_loss) and grads.keys() == plain_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, plain_grads[name], rtol=1e-5, atol=1e-7, msg=name)


def test_tiny_student_checkpointed_gradients_match():
    torch.manual_seed(0)
    shape = {"frames": 4, "height": 8, "width": 8}
    plain = TinyBackbone.from_config(shape, vocabulary(), 5).new_network(TINY_MODEL).train()
    backbone = TinyBackbone.from_config({**shape, "gradient_checkpointing": True}, vocabulary(), 5)
    checkpointed = backbone.new_network(TINY_MODEL).train()
    checkpointed.load_state_dict(plain.state_dict())
    cond = backbone.encode_prompts(["a red circle moving left", "a blue square moving up"])
    x = torch.randn(2, *backbone.latent_shape)
    _assert_same_training_signal(backbone, plain, checkpointed, x, torch.tensor([0.7, 0.3]), cond)
    with torch.no_grad():  # sampling: the same output
        torch.testing.assert_close(backbone.predict(checkpointed, x, torch.tensor(0.5), cond),
                                   backbone.predict(plain, x, torch.tensor(0.5), cond))


def test_wan_students_and_teacher_features_checkpointed(tmp_path):
    """A small random WanTransformer3DModel through the Wan adapter: a full student, a detail expert (LoRA), and
    gradients through the frozen teacher's block features (the GAN term of Eq. 10)."""
    torch.manual_seed(0)
    build_wan(tmp_path)
    adapter = pretrained_adapter("wan")
    plain_backbone = adapter({"pretrained": str(tmp_path), **SHAPE})
    backbone = adapter({"pretrained": str(tmp_path), "gradient_checkpointing": True, **SHAPE})
    plain = plain_backbone.load_network(tmp_path / "transformer").train()
    checkpointed = backbone.load_network(tmp_path / "transformer").train()
    cond = backbone.encode_prompts(["a red cat runs", "the dog walks in the city"])
    x, sigma = torch.randn(2, *backbone.latent_shape), torch.tensor([0.8, 0.4])
    _assert_same_training_signal(backbone, plain, checkpointed, x, sigma, cond)

    grads = []
    for net in (plain, checkpointed):
        torch.manual_seed(1)  # the same LoRA initialisation
        expert = attach_detail_expert(copy.deepcopy(net), backbone, rank=2, alpha=4)
        loss = expert(backbone, x, sigma, cond).pow(2).mean()
        loss.backward()
        grads.append({n: p.grad for n, p in expert.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys() and any("lora_" in n for n in grads[0])
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-7, msg=name)

    inputs = []
    for teacher in (plain.eval().requires_grad_(False), checkpointed.eval().requires_grad_(False)):
        fake = x.clone().requires_grad_(True)
        sum(f.pow(2).mean() for f in backbone.features(teacher, fake, sigma, cond, 1)).backward()
        inputs.append(fake.grad)
    torch.testing.assert_close(inputs[1], inputs[0], rtol=1e-5, atol=1e-7)

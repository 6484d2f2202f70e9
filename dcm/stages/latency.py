"""Stage `latency`: Table 1's latency column, every Table 1 sampler loaded in one process and timed interleaved
(round-robin rounds, median per sampler, in equal-call blocks where the config asks), so that all of them run under
one machine state and their speed-ups over the full-step teacher are comparable and bounded by the step-count ratio.
Only the sampler being timed has its networks on the GPU (four 13B networks would not fit one at HunyuanVideo
scale); the moves are outside the timing."""

from __future__ import annotations

import functools
import logging

from torch import nn

from dcm import layout, methods
from dcm.backbones import load_backbone, teacher_network_dir
from dcm.eval.latency import above_step_limit, equal_call_blocks, interleaved_latency, speedups
from dcm.io import write_json
from dcm.method_samplers import SamplerRequest, build_sampler, sample_seeds, sampling_prompts
from dcm.outputs import stage_output
from dcm.sampling import seeded_noise
from dcm.schedule import PhaseSchedule

log = logging.getLogger("dcm")

def place(held: dict[str, list[nn.Module]], name: str, device) -> None:
    """The networks of sampler `name` on `device`, every other sampler's on the CPU (moved off first, so that
    the device holds one sampler's networks at a time)."""
    mine = {id(net) for net in held[name]}
    for net in (net for nets in held.values() for net in nets if id(net) not in mine):
        net.to("cpu")
    for net in held[name]:
        net.to(device)


def run(cfg: dict) -> None:
    backbone = load_backbone(cfg, layout.require(teacher_network_dir(cfg), "teacher"))
    prompts, cond = sampling_prompts(cfg, backbone)
    backbone.release_text_encoders()  # before the samplers' networks arrive
    seeds = sample_seeds(cfg, len(prompts))[0][:1]
    noise, one_cond = seeded_noise(backbone.latent_shape, seeds), cond[:1]
    sets = methods.table1_sets(cfg)
    phases, calls, held = PhaseSchedule.from_config(cfg), {}, {}
    teacher = functools.cache(lambda: backbone.load_network(teacher_network_dir(cfg)).eval().requires_grad_(False))
    for name in sets:  # every sampler built on the GPU, then parked on the CPU until its turn
        method, steps = layout.parse_sample_set(name)
        request = SamplerRequest(cfg, methods.check_request(cfg, method, steps), steps, phases, backbone,
                                 layout.run_dir(cfg), layout.own_point(cfg))
        request.teacher = lambda request=request: request.hold(teacher())  # one copy, shared by every teacher set
        sampler = build_sampler(request)
        held[name] = request.held
        place(held, name, "cpu")
        calls[name] = lambda sampler=sampler: backbone.decode(sampler(noise, one_cond, seeds))
    timing = cfg["sampling"]["latency"]
    block = equal_call_blocks(sets, sets[0]) if timing["equal_call_blocks"] else None
    per_set = interleaved_latency(calls, timing["warmup"], timing["repeats"],
                                  before=lambda name: place(held, name, backbone.device), block=block)
    speedup = speedups(per_set, sets[0])
    faults = above_step_limit(per_set, sets[0])
    if faults:
        log.warning("speed-up above the step-count limit (a timing fault): %s", faults)
    with stage_output(layout.latency_dir(layout.run_dir(cfg)), cfg) as work:
        write_json(work / layout.LATENCY, {"reference": sets[0], "batch_size": 1, "per_video": per_set,
                                         "speedup": speedup, "above_step_limit": faults})

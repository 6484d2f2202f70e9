"""Stage `export`: a distilled student as a diffusers pipeline directory `<run>/export/<method>/` that the stock
pipeline class loads with `from_pretrained` (dcm/export.py): a DCM variant (SemE + merged DetE, switched at
kappa), VCM or PCM (its network for sampling.steps[0] steps, with that phase count in the scheduler), for Wan,
HunyuanVideo or CogVideoX.

Wan (WanPipeline switches to transformer_2 at boundary_ratio):

    pipe = WanPipeline.from_pretrained("results/wan2.1-t2v-1.3b/export/dcm")
    video = pipe("a red fox in the snow", num_inference_steps=4, guidance_scale=1.0).frames[0]

HunyuanVideo (one transformer: DetE from transformer_2/, swapped in by ExpertSwitch at kappa):

    plan = json.loads(Path(d, "few_step.json").read_text())
    pipe = HunyuanVideoPipeline.from_pretrained(d)
    detail = HunyuanVideoTransformer3DModel.from_pretrained(d, subfolder="transformer_2")
    video = pipe(prompt, sigmas=plan["sigmas"]["4"], num_inference_steps=4,
                 callback_on_step_end=ExpertSwitch(detail, plan["boundary_timestep"])).frames[0]

CogVideoX (one transformer; the few-step DDIM scheduler places the steps, ExpertSwitch swaps DetE in):

    pipe = CogVideoXPipeline.from_pretrained(d)
    detail = CogVideoXTransformer3DModel.from_pretrained(d, subfolder="transformer_2")
    video = pipe(prompt, num_inference_steps=4, guidance_scale=1.0,
                 callback_on_step_end=ExpertSwitch(detail, plan["boundary_timestep"])).frames[0]
"""

from __future__ import annotations

from dcm import layout, methods
from dcm.backbones import load_backbone, teacher_network_dir
from dcm.errors import DCMError
from dcm.export import (FewStepCogVideoXDDIMScheduler, FewStepFlowMatchScheduler, boundary_ratio, cogvideox_pipeline,
                        few_step_plan, hunyuan_pipeline, merged_detail_network, phase_schedule_config, wan_pipeline)
from dcm.io import write_json
from dcm.method_samplers import SamplerRequest, detail_expert
from dcm.outputs import stage_output
from dcm.schedule import PhaseSchedule

EXPORTABLE_BACKBONES = ("wan", "hunyuan_video", "cogvideox")
ONE_NETWORK, EXPERTS = "dcm.method_samplers:single_network", "dcm.method_samplers:experts"
FEW_STEP_FILE = "few_step.json"


def run(cfg: dict, method: str) -> None:
    name, entry = cfg["backbone"]["name"], methods.method(cfg, method)
    if name not in EXPORTABLE_BACKBONES:
        raise DCMError(f"export: backbone.name={name!r} has no stock diffusers pipeline route; exportable: "
                       f"{', '.join(EXPORTABLE_BACKBONES)}")
    if method == "lcm":
        raise DCMError("export --method lcm: LCM's sampler wraps the network in boundary scalings (c_skip, c_out) "
                       "and re-noises between steps, which no stock pipeline computes; export dcm, vcm or pcm")
    if entry.sampler not in (ONE_NETWORK, EXPERTS):
        raise DCMError(f"export --method {method}: only one-network students (PCM, VCM) and SemE + DetE variants "
                       "are exported")
    steps, configured = cfg["sampling"]["steps"][0], PhaseSchedule.from_config(cfg)
    phases = configured.with_pcm_phases(configured.pcm_phase_count(steps))  # PCM: the network of sampling.steps[0]
    backbone = load_backbone(cfg, layout.require(teacher_network_dir(cfg), "teacher"))
    request = SamplerRequest(cfg, entry, steps, phases, backbone, layout.run_dir(cfg), layout.own_point(cfg))
    detail = None
    if entry.sampler == ONE_NETWORK:
        (directory,) = request.networks()
        net = request.load(directory)
    else:
        seme, dete = request.networks()
        expert = detail_expert(request, dete, request.load(seme))
        parameter_efficient = methods.variant_flags(cfg, entry.variant)["parameter_efficient"]
        detail = merged_detail_network(expert) if parameter_efficient else expert.net
        net = request.load(seme)
    with stage_output(layout.run_dir(cfg) / "export" / method, cfg) as work:
        if name == "wan":
            scheduler = FewStepFlowMatchScheduler(grid_sigmas=phases.sigmas.tolist(),
                                                  phase_schedule=phase_schedule_config(phases), cut=entry.cut,
                                                  grid_timesteps=backbone.model_timestep(phases.sigmas).tolist())
            boundary = None if detail is None else boundary_ratio(phases.sigmas, phases.kappa)
            wan_pipeline(backbone, net, scheduler, detail, boundary).save_pretrained(str(work), safe_serialization=True)
            return
        if name == "hunyuan_video":
            pipe = hunyuan_pipeline(backbone, net)
        else:
            pipe = cogvideox_pipeline(backbone, net, FewStepCogVideoXDDIMScheduler(
                grid_timesteps=[round(t) for t in phases.timesteps], phase_schedule=phase_schedule_config(phases),
                cut=entry.cut))
        pipe.save_pretrained(str(work), safe_serialization=True)
        if detail is not None:
            detail.save_pretrained(str(work / "transformer_2"), safe_serialization=True)
        write_json(work / FEW_STEP_FILE, few_step_plan(phases, entry.cut, detail is not None,
                                                       tuple(sorted(set(cfg["sampling"]["steps"]))),
                                                       sigmas=name == "hunyuan_video"))

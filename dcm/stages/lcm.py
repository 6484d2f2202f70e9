"""Stage `lcm`: the LCM baseline, consistency to the clean end with boundary scalings and an EMA target."""

from __future__ import annotations

from dcm import layout
from dcm.backbones import load_teacher, teacher_network_dir
from dcm.baselines.lcm import LCMFunction, LCMObjective
from dcm.config import train_seed
from dcm.distillation import fresh_student, pair_source
from dcm.outputs import stage_output
from dcm.schedule import PhaseSchedule
from dcm.training import TrainLoop, adamw, make_ema, scale_options


def run(cfg: dict) -> None:
    phases = PhaseSchedule.from_config(cfg)
    backbone, teacher = load_teacher(cfg)
    student = fresh_student(backbone, teacher_network_dir(cfg))
    lcfg, dcfg = cfg["lcm"], cfg["distill"]
    ema = make_ema(student, lcfg["ema_decay"])

    def function(expert):
        return LCMFunction(expert.velocity_fn(backbone), lcfg["sigma_data"], lcfg["timestep_scaling"])

    with stage_output(layout.trainer_dir(layout.trained_dir(cfg), "lcm"), cfg) as work:
        TrainLoop(
            student=student, optimizer=adamw(student.parameters(), lcfg["lr"], dcfg["weight_decay"]),
            objective=LCMObjective(function(student), function(ema.module), phases.sigmas, lcfg["loss"],
                                   dcfg["huber_c"]),
            sample_batch=pair_source(cfg, backbone, teacher).sampler(0, phases.num_steps, lcfg["batch_size"]),
            out_dir=work, steps=lcfg["steps"], seed=train_seed(cfg), checkpoint_every=lcfg["checkpoint_every"],
            grad_clip=dcfg["grad_clip"], ema=ema, description="lcm", **scale_options(cfg, backbone),
        ).run()
        backbone.save_network(student.net, work / layout.NETWORK)

"""The registry of methods (torch-free): for each, the stage that trains it and its config section, its outputs,
the config sections it reads, its MLflow experiment and table, how its sampler is built and the step counts
it takes. The CLI, the workflow, dvc.yaml, tracking, config validation and the sample stage read it.

Three kinds of method share one record, `Method`:
- the entries of METHODS (the teacher and the baselines), each trained, if at all, by its own `Trainer`;
- one per Table 3 variant of the config (`variants`), trained by `vcm` or by `seme` + `dete`;
- Fig. 3's expert mixes, `<seme|vcm>+<dete|vcm>[@variant]`, sampled from those same networks.
Adding a distillation baseline: a library module with its training and sampler functions, and one entry
in METHODS (a config section in dcm/schema.yaml if it has hyper-parameters of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcm import layout
from dcm.errors import DCMError
from dcm.schedule import PHASES_PER_STEP, PhaseSchedule, phases_problem

#: config sections every training stage reads, on top of its own
TRAINING_SECTIONS = ("seed", "backbone", "schedule", "distill")


@dataclass(frozen=True)
class Trainer:
    """A training stage, `python -m dcm <name>`: one network per run, output <run>/<name>/, or with
    `per_phase_count` one per PCM phase count P, `python -m dcm <name> --phases P`, output <run>/<name>/<P>/."""

    name: str  # CLI stage, workflow job and output directory
    run: str  # "module:function" taking the config (and `phases`, if per_phase_count): trains and writes its network
    section: str  # its config section of hyper-parameters
    help: str  # one line for the CLI
    per_phase_count: bool = False  # one network per phase count of the pcm cut (pcm.phases), not one per run

    @property
    def reads(self) -> tuple[str, ...]:
        """The config sections the stage reads (its DVC params and Snakemake params)."""
        return (*TRAINING_SECTIONS, self.section)


@dataclass(frozen=True)
class Method:
    """One way of sampling that the tables compare; its sample sets are <name>-<steps>."""

    name: str  # the sample-set prefix
    help: str  # one line: what it is
    cut: str  # how its sampler cuts the teacher grid (dcm.schedule.CUTS): fixes the step counts it takes
    sampler: str  # "module:function" building its sampler from a dcm.method_samplers.SamplerRequest
    reads: tuple[str, ...] = ()  # config sections its sampler reads, beyond the schedule and sampling
    trainer: Trainer | None = None  # the stage that trains its network (None: none, or the variant's stages)
    table: str = "1"  # where its rows appear: "1" (Table 1), "3" (Table 3 ablations) or "fig3" (Fig. 3 mixes)
    variant: str | None = None  # the Table 3 variant whose networks it samples (variants and mixes)
    semantic: str | None = None  # Fig. 3 mixes: the semantic phase's network, seme or vcm
    detail: str | None = None  # Fig. 3 mixes: the detail phase's network, dete or vcm


VCM = Trainer("vcm", "dcm.stages.vcm:run", "vcm",
              "train the vanilla consistency model: one student on both phases (Table 3, row 1)")

#: the teacher and the baselines, in Table 1's order (the config's `tables.method` variant follows them)
METHODS = {
    "teacher": Method("teacher", "the teacher's own Euler ODE solve", "whole", "dcm.method_samplers:teacher"),
    "lcm": Method("lcm", "LCM baseline: consistency to the clean end, multistep sampling re-noises", "whole",
                  "dcm.method_samplers:lcm", ("lcm",),
                  Trainer("lcm", "dcm.stages.lcm:run", "lcm", "train the LCM baseline")),
    "pcm": Method("pcm", "PCM baseline: uniform phases (pcm.phases; 'steps': as many as sampling steps), "
                  "deterministic jumps to each edge", "pcm", "dcm.method_samplers:single_network", ("pcm",),
                  Trainer("pcm", "dcm.stages.pcm:run", "pcm", "train the PCM baseline: one network of --phases P "
                          "uniform phases (default: pcm.phases)", per_phase_count=True)),
}

#: every training stage of the registry, by name
TRAINERS = {VCM.name: VCM, **{m.trainer.name: m.trainer for m in METHODS.values() if m.trainer is not None}}

#: Fig. 3's panels: label -> method (the OD variant's two full experts, as in Sec. 3.2)
FIGURE3_PANELS = {"VCM": "vcm", "SemE+VCM": "seme+vcm", "VCM+DetE": "vcm+dete", "SemE+DetE": "od"}
MIX_SEMANTIC, MIX_DETAIL, MIX_VARIANT = ("seme", "vcm"), ("dete", "vcm"), "od"


def variant_flags(cfg: dict, variant: str) -> dict:
    """The Table 3 switches (decouple, parameter_efficient, temporal_coherence, gan) of `variant`."""
    if variant not in cfg["variants"]:
        raise DCMError(f"unknown variant {variant!r}; the config's `variants` defines {sorted(cfg['variants'])}")
    return cfg["variants"][variant]


def _variant_method(cfg: dict, name: str) -> Method:
    flags = variant_flags(cfg, name)
    if not flags["decouple"]:
        return Method(name, f"Table 3 variant {name}: one student on both phases", "experts",
                      "dcm.method_samplers:single_network", ("variants",), VCM, _table_of(cfg, name), name)
    return Method(name, f"Table 3 variant {name}: SemE above kappa, DetE at and below", "experts",
                  "dcm.method_samplers:experts", ("variants",), None, _table_of(cfg, name), name)


def _table_of(cfg: dict, variant: str) -> str:
    return "1" if variant == cfg["tables"]["method"] else "3"


def _mixed_method(cfg: dict, name: str) -> Method:
    pair, at, variant = name.partition("@")
    semantic, _, detail = pair.partition("+")
    variant = variant or MIX_VARIANT
    if semantic not in MIX_SEMANTIC or detail not in MIX_DETAIL or (at and not name.split("@", 1)[1]):
        raise DCMError(f"mixed method {name!r}: expected <{'|'.join(MIX_SEMANTIC)}>+<{'|'.join(MIX_DETAIL)}>"
                       "[@variant], e.g. seme+vcm or vcm+dete@od")
    if not variant_flags(cfg, variant)["decouple"]:
        raise DCMError(f"mixed method {name!r} needs experts: variant {variant!r} has decouple: false")
    return Method(name, f"Fig. 3 mix: {semantic} above kappa, {detail} at and below ({variant}'s experts)",
                  "experts", "dcm.method_samplers:mix", ("variants",), None, "fig3", variant, semantic, detail)


def method(cfg: dict, name: str) -> Method:
    """The method called `name` in this config, or an error listing the known ones."""
    if name in METHODS:
        return METHODS[name]
    if name in cfg["variants"]:
        return _variant_method(cfg, name)
    if "+" in name:
        return _mixed_method(cfg, name)
    raise DCMError(f"unknown method {name!r}; known: {', '.join([*METHODS, *cfg['variants']])} or an expert mix "
                   f"<{'|'.join(MIX_SEMANTIC)}>+<{'|'.join(MIX_DETAIL)}>[@variant]")


def networks(cfg: dict, m: Method, trained: str | Path, point: str | Path, steps: int) -> list[Path]:
    """The training outputs `m` samples from at `steps` steps: its trainer's under `trained` (the run or a
    training seed's directory; the one of its phase count, for a per-phase-count trainer), or its variant's SemE
    and DetE from `point` (`trained` or a kappa-sweep point); a Fig. 3 mix takes VCM and its variant's experts."""
    if m.trainer is not None and m.trainer.per_phase_count:
        return [layout.phased_trainer_dir(trained, m.trainer.name, phase_count(cfg, m.name, steps))]
    if m.trainer is not None:
        return [layout.trainer_dir(trained, m.trainer.name)]
    if m.variant is None:
        return []
    flags = variant_flags(cfg, m.variant)
    experts = [layout.seme_dir(point, flags["temporal_coherence"]), layout.dete_dir(point, m.variant)]
    return experts if m.semantic is None else [layout.trainer_dir(trained, VCM.name), *experts]


def trains(cfg: dict, name: str, steps: int) -> bool:
    """Whether `name` samples from trained networks at `steps` steps (every method but the teacher)."""
    return bool(networks(cfg, method(cfg, name), "", "", steps))


def phase_count(cfg: dict, name: str, steps: int) -> int:
    """How many phases method `name` cuts the teacher grid into at `steps` steps: 1 for the teacher and LCM (the
    whole grid), PCM's pcm.phases (`steps` when it is 'steps'), 2 for the variants and mixes (split at kappa; 2 x
    schedule.expert_phases with sub-phases)."""
    return len(PhaseSchedule.from_config(cfg).edges(method(cfg, name).cut, steps)) - 1


def trained_phases(cfg: dict, phases: int | None) -> int:
    """The phase count a per-phase-count trainer (pcm) trains: its --phases, else a fixed pcm.phases."""
    configured = PhaseSchedule.from_config(cfg).pcm_phases
    if phases is None and configured == PHASES_PER_STEP:
        raise DCMError(f"pcm.phases is {PHASES_PER_STEP!r} (one network per sampling step count): give --phases P, "
                       "the phase count to train")
    return configured if phases is None else phases


def check_phases(cfg: dict, phases: int) -> None:
    """An error naming --phases when the teacher grid cannot be cut into `phases` uniform phases."""
    num_steps = PhaseSchedule.from_config(cfg).num_steps
    problem = phases_problem(num_steps, phases)
    if problem:
        raise DCMError(f"--phases {phases}: {problem} (schedule.num_steps={num_steps})")


def experiment(cfg: dict, name: str) -> str:
    """MLflow experiment (after '<run name>/') of a method's runs: its table."""
    return {"1": "table1", "3": "table3-ablations", "fig3": "table3-ablations"}[method(cfg, name).table]


def check_steps(cfg: dict, name: str, steps: int, what: str, schedule: PhaseSchedule | None = None) -> None:
    """An error naming `what` (the config key or option) when `name` cannot be sampled at `steps` steps."""
    m = method(cfg, name)
    schedule = schedule or PhaseSchedule.from_config(cfg)
    problem = schedule.step_problem(m.cut, steps)
    if problem:
        raise DCMError(f"{what}: {layout.sample_set(name, steps)} cannot be sampled: {problem}")


def check_request(cfg: dict, name: str, steps: int) -> Method:
    """The entry of `name`, once it is known to be samplable at `steps` in this process (its --kappa point or
    --train-seed too)."""
    entry = method(cfg, name)
    point = cfg["kappa_sweep"]["point"]
    if point is not None and (entry.variant is None or entry.semantic is not None
                              or not variant_flags(cfg, entry.variant)["decouple"]):
        raise DCMError(f"--kappa {point} applies to methods made of SemE and DetE only (a variant with decouple: "
                       f"true), not {name!r}: its networks are trained at schedule.kappa alone")
    seed = cfg["train_seed_point"]
    if seed is not None and not trains(cfg, name, steps):
        raise DCMError(f"--train-seed {seed} applies to trained students, not {name!r}: it trains nothing (its "
                       "samples are the run's own)")
    check_steps(cfg, name, steps, f"--steps {steps}")
    return entry


# The sample sets the workflow builds, each once, in a fixed order.

def check_arguments(cfg: dict, args: dict) -> None:
    """Refuse a method, step count, variant or phase count the config cannot run (a stage's options, or a workflow
    job's wildcards), before any work or tracking starts."""
    if "variant" in args:
        variant_flags(cfg, args["variant"])
    if "phases" in args:
        check_phases(cfg, int(args["phases"]))
    if "method" in args:
        if "steps" in args:
            check_request(cfg, args["method"], int(args["steps"]))
        else:
            method(cfg, args["method"])


def table1_sets(cfg: dict) -> list[str]:
    """Table 1: the teacher at its full step count, then at each step count the teacher's own few-step solve
    (a reference row the paper does not have), the baselines and `tables.method`."""
    sampling = cfg["sampling"]
    return [layout.sample_set("teacher", sampling["teacher_steps"])] + [
        layout.sample_set(m, k) for k in sampling["steps"] for m in (*METHODS, cfg["tables"]["method"])]


def table3_sets(cfg: dict) -> list[str]:
    """Table 3: every variant at the ablation's step count."""
    return [layout.sample_set(v, cfg["tables"]["ablation_steps"]) for v in cfg["variants"]]


def detail_variants(cfg: dict) -> list[str]:
    """The variants with a detail expert of their own (OD): those whose dete output Table 3's parameter column
    reads."""
    return [name for name, flags in cfg["variants"].items() if flags["decouple"]]


def temporal_coherence_trained(cfg: dict) -> bool:
    """Whether a decoupled variant trains its SemE with the TC term (Eq. 8): the training-terms figure reads that
    SemE's metrics."""
    return any(flags["decouple"] and flags["temporal_coherence"] for flags in cfg["variants"].values())


def adversarial_variants(cfg: dict) -> list[str]:
    """The decoupled variants whose DetE trains against the discriminator (Eq. 9-10): the training-terms figure
    reads their metrics."""
    return [name for name in detail_variants(cfg) if cfg["variants"][name]["gan"]]


def figure3_sets(cfg: dict) -> list[str]:
    """Fig. 3: its panels at the ablation's step count."""
    return [layout.sample_set(m, cfg["tables"]["ablation_steps"]) for m in FIGURE3_PANELS.values()]


def sample_sets(cfg: dict) -> list[str]:
    """The sets the run scores: the teacher at its full step count, then the teacher, the baselines and every
    variant at each step count."""
    sampling = cfg["sampling"]
    return [layout.sample_set("teacher", sampling["teacher_steps"])] + [
        layout.sample_set(m, k) for k in sampling["steps"] for m in (*METHODS, *cfg["variants"])]


def seed_sets(cfg: dict) -> list[str]:
    """The sets each training seed samples and scores (extra_train_seeds): those of Tables 1 and 3 whose
    method trains a network (not the teacher's)."""
    return [name for name in dict.fromkeys(table1_sets(cfg) + table3_sets(cfg))
            if trains(cfg, *layout.parse_sample_set(name))]


def compare_sets(cfg: dict) -> list[str]:
    """The sets `compare` measures against the full-step teacher: every scored set and Fig. 3's mixes."""
    return sorted(set(sample_sets(cfg) + figure3_sets(cfg)))


def userstudy_sets(cfg: dict) -> list[str]:
    """The sets the user study compares, at `userstudy.steps`."""
    study = cfg["userstudy"]
    return sorted({layout.sample_set(m, study["steps"]) for pair in study["comparisons"] for m in pair})


def sweep_set(cfg: dict) -> str:
    """The set the kappa sweep (Fig. 10, right) scores at each kappa."""
    return layout.sample_set(cfg["tables"]["method"], cfg["tables"]["ablation_steps"])


def check_planned_sets(cfg: dict, source: str) -> None:
    """Every sample set the workflow will build can be sampled: errors name the config key that asks for it."""
    schedule, sampling = PhaseSchedule.from_config(cfg), cfg["sampling"]
    planned = [("teacher", sampling["teacher_steps"], f"sampling.teacher_steps={sampling['teacher_steps']}")]
    planned += [(m, k, f"sampling.steps contains {k}") for k in sampling["steps"] for m in (*METHODS, *cfg["variants"])]
    ablation = cfg["tables"]["ablation_steps"]
    planned += [(m, ablation, f"tables.ablation_steps={ablation}") for m in FIGURE3_PANELS.values()]
    study = cfg["userstudy"]
    for pair in study["comparisons"]:
        for m in pair:
            try:
                method(cfg, m)
            except DCMError as err:
                raise DCMError(f"{source}: userstudy.comparisons names {m!r}: {err}") from None
            planned.append((m, study["steps"], f"userstudy.steps={study['steps']}"))
    for name, steps, what in planned:
        try:
            check_steps(cfg, name, steps, what, schedule)
        except DCMError as err:
            raise DCMError(f"{source}: {err}") from None
    for kappa in cfg["kappa_sweep"]["values"]:
        try:
            check_steps(cfg, cfg["tables"]["method"], ablation, f"kappa_sweep.values contains {kappa}",
                        _sweep_schedule(schedule, kappa))
        except DCMError as err:
            raise DCMError(f"{source}: {err}") from None


def _sweep_schedule(schedule: PhaseSchedule, kappa: int) -> PhaseSchedule:
    if not 0 < kappa < schedule.num_steps:
        raise DCMError(f"kappa_sweep.values contains {kappa}, outside the teacher grid: it must lie in "
                       f"1..{schedule.num_steps - 1}")
    return schedule.at_kappa(kappa)

"""Stage `schedule`: what a config samples on, without running anything: the teacher grid (sigma and the network's
timestep input at every grid index 0..N, as the backbone's pipeline builds them), the guidance, and for the
teacher and every method and step count the phase edges, the few-step schedule's grid indices and, for the
dual-expert methods, where the expert switches. Prints a table, or JSON with --json.

Built on the run's PhaseSchedule (dcm/schedule.py) and the method registry (dcm/methods.py), which the sample
stage uses to build the same samplers."""

from __future__ import annotations

import json

from dcm import methods
from dcm.pipelines import guidance, pipeline
from dcm.schedule import PhaseSchedule

UNGUIDED = {"kind": "none", "scale": 1.0, "negative_prompt": ""}  # students sample the guided flow without CFG


def entry(cfg: dict, phases: PhaseSchedule, name: str, steps: int) -> dict:
    """One method at one step count: edges, schedule indices with their sigmas and timesteps, experts, guidance."""
    m = methods.method(cfg, name)
    schedule = phases.few_step(m.cut, steps)
    sigmas, timesteps = phases.grid
    out = {"edges": phases.edges(m.cut, steps), "schedule": schedule, "sigmas": [float(sigmas[i]) for i in schedule],
           "timesteps": [float(timesteps[i]) for i in schedule],
           "guidance": guidance(cfg["backbone"]) if name == "teacher" else UNGUIDED}
    if m.variant is not None and methods.variant_flags(cfg, m.variant)["decouple"]:  # SemE above kappa, DetE at/below
        out["switch"] = {"index": phases.kappa, "sigma": float(sigmas[phases.kappa]),
                         "timestep": float(timesteps[phases.kappa])}
        out["experts"] = [phases.phase_of(i) for i in schedule[:-1]]
    return out


def report(cfg: dict) -> dict:
    """The whole report as a JSON-ready dict (module docstring)."""
    phases, sampling, spec = PhaseSchedule.from_config(cfg), cfg["sampling"], pipeline(cfg["backbone"]["name"])
    sigmas, timesteps = phases.grid
    by_method = {"teacher": {str(sampling["teacher_steps"]): entry(cfg, phases, "teacher", sampling["teacher_steps"])}}
    for name in (*methods.METHODS, *cfg["variants"]):
        by_method.setdefault(name, {}).update({str(k): entry(cfg, phases, name, k) for k in sampling["steps"]})
    return {"backbone": cfg["backbone"]["name"], "scheduler": spec.scheduler, "pipeline": spec.source,
            "num_steps": phases.num_steps, "shift": phases.shift if spec.shift_key else None, "kappa": phases.kappa,
            "grid": {"sigmas": sigmas.tolist(), "timesteps": timesteps.tolist()},
            "guidance": guidance(cfg["backbone"]), "methods": by_method}


def as_text(rep: dict) -> str:
    """The report as aligned text: the grid, then one line per method and step count."""
    shift = "" if rep["shift"] is None else f", shift {rep['shift']:g}"
    g = rep["guidance"]
    lines = [f"{rep['backbone']}: {rep['scheduler']} ({rep['pipeline']}){shift}, N = {rep['num_steps']}, "
             f"kappa = {rep['kappa']}; teacher guidance {g['kind']} {g['scale']:g}"
             + (f", negative prompt {g['negative_prompt']!r}" if g["kind"] == "cfg" else ""), "",
             f"{'i':>4} {'sigma':>10} {'timestep':>10}"]
    lines += [f"{i:>4} {s:>10.6f} {t:>10.3f}" for i, (s, t) in
              enumerate(zip(rep["grid"]["sigmas"], rep["grid"]["timesteps"]))]
    lines.append("")
    for method, by_steps in rep["methods"].items():
        for steps, e in by_steps.items():
            every = e["schedule"] == list(range(rep["num_steps"], -1, -1))
            indices = f"every grid index {rep['num_steps']}..0" if every else f"indices {e['schedule']}"
            text = f"{method}-{steps}: edges {e['edges']}, {indices}"
            if "switch" in e:
                s = e["switch"]
                text += (f", switch at index {s['index']} (sigma {s['sigma']:.4f}, t {s['timestep']:.1f}): "
                         f"{' '.join(x[0].upper() for x in e['experts'])}")
            if e["guidance"]["kind"] != "none":
                text += f", guidance {e['guidance']['kind']} {e['guidance']['scale']:g}"
            lines.append(text)
    return "\n".join(lines) + "\n"


def run(cfg: dict, as_json: bool = False) -> None:
    """Print the report (module docstring)."""
    rep = report(cfg)
    print(json.dumps(rep, indent=1) if as_json else as_text(rep), end="" if not as_json else "\n")

"""The project's performance figures in one command, every ratio measured interleaved in this one process.

    .venv/bin/python benchmarks/run.py [--quick] [--out results/benchmarks]

Sampling (the tiny default's network shape from config/config.yaml, random weights: timing does not depend
on them): teacher, LCM, PCM and DCM at 2, 4 and 8 steps and the teacher at 50, each built by the sample
stage's own `method_sampler`, plus the bare network calls each sampler makes, all timed in rounds of one block
each (a k-step sampler run 50/k times back to back, so that every block makes ~50 network calls:
dcm.eval.latency.equal_call_blocks), shuffled per round (dcm.eval.latency.interleaved_latency); each ratio is the
median of the per-round ratios (paired_ratio), with their quartiles for the sampler overheads. Stages
(config/smoke.yaml, as subprocesses; in --quick through a warm stage server, without peak memory): training
steps/s from two runs of each training stage at two step counts, start-up (the intercept), peak memory (max RSS);
trajectory-cache read and write rates; the detail expert's extra parameters (tiny default and HunyuanVideo on the
meta device); stage start-up in a fresh interpreter and through a warm stage server (dcm/stage_server.py),
interleaved; no-op `snakemake` and `dvc repro` (benchmarks/noop.py; not in --quick).
Writes <out>/benchmarks.json and <out>/benchmarks.md. Exits 1 if a physical limit is broken (a speed-up
above the step-count ratio in more rounds than noise explains: dcm.eval.latency.above_step_limit).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import torch  # noqa: E402

from dcm import layout, methods, stage_server  # noqa: E402
from dcm.backbones import load_teacher, teacher_network_dir  # noqa: E402
from dcm.config import load_config  # noqa: E402
from dcm.eval.latency import (above_step_limit, device_name, equal_call_blocks, interleaved_latency,  # noqa: E402
                              paired_ratio, round_quartiles, rounds_above_limit, speedups)
from dcm.experts import Expert, attach_detail_expert, detail_state_dict  # noqa: E402
from dcm.io import load_tensors, save_tensors, write_json  # noqa: E402
from dcm.method_samplers import SamplerRequest, build_sampler, detail_expert  # noqa: E402
from dcm.sampling import seeded_noise  # noqa: E402
from dcm.schedule import PhaseSchedule  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIG, SMOKE = REPO / "config/config.yaml", REPO / "config/smoke.yaml"
METHODS, STEPS = ("teacher", "lcm", "pcm", "dcm"), (2, 4, 8)
PROMPT = "a red circle moving left"
TRAINING_STAGES = ("teacher", "seme", "dete", "vcm", "lcm", "pcm")
STAGE_OPTIONS = {"pcm": ["--phases", "4"]}  # the smoke run's one PCM network (it samples 4 steps)
#: batch size: (warm-up rounds of one call each, timed rounds); a timed round times every sampler and its bare calls
#: in blocks of ~50 network calls each (equal_call_blocks): ~7 s at batch 1 here, ~20 s at batch 8
QUICK_ROUNDS, FULL_ROUNDS = {1: (1, 10)}, {1: (2, 20), 8: (1, 10)}  # 10 rounds: the fewest a sign test can fault


def random_run(cfg: dict, steps: tuple[int, ...] | None = None) -> None:
    """The networks every Table 1 method samples at each of `steps` (default: sampling.steps) with random weights,
    saved where the stages save trained ones (PCM's, one per phase count)."""
    from dcm.backbones.tiny import TinyBackbone
    from dcm.data.procedural import vocabulary
    from dcm.stages.teacher import MAX_WORDS

    backbone = TinyBackbone.from_config(cfg["backbone"], vocabulary(), MAX_WORDS)
    new = lambda: backbone.new_network(cfg["backbone"]["model"])  # noqa: E731
    backbone.save_network(new(), teacher_network_dir(cfg))
    run, point = layout.run_dir(cfg), layout.own_point(cfg)
    counts = steps or cfg["sampling"]["steps"]
    for directory in sorted({d for name in ("lcm", "pcm") for k in counts
                             for d in methods.networks(cfg, methods.method(cfg, name), run, point, k)}):
        backbone.save_network(new(), directory / layout.NETWORK)
    seme, dete = methods.networks(cfg, methods.method(cfg, cfg["tables"]["method"]), run, point, counts[0])
    backbone.save_network(new(), seme / layout.NETWORK)
    rank, alpha = cfg["dete"]["lora_rank"], cfg["dete"]["lora_alpha"]
    expert = attach_detail_expert(backbone.load_network(seme / layout.NETWORK), backbone, rank, alpha)
    dete.mkdir(parents=True)
    save_tensors(dete / layout.DETAIL_WEIGHTS,
                 {k: v + 0.01 * torch.randn_like(v) for k, v in detail_state_dict(expert).items()})
    write_json(dete / layout.DETAIL_CONFIG, {"lora_rank": rank, "lora_alpha": alpha, "seme": str(seme)})


def bare_calls(request: SamplerRequest, x, cond):
    """The network calls the request's sampler makes, made directly: one predict per step on the same network,
    the detail expert held in place once for its whole phase, as the sampler holds it (Expert.phase)."""
    backbone, sigmas = request.backbone, request.phases.sigmas.to(x.dtype)
    steps = [sigmas[i].expand(x.shape[0]) for i in request.schedule[:-1]]
    if request.method.name == "teacher":
        net = request.teacher()
        return lambda: [backbone.predict(net, x, s, cond) for s in steps]
    if request.method.variant is None:
        net = request.load(request.networks()[0])
        return lambda: [backbone.predict(net, x, s, cond) for s in steps]
    seme, dete = request.networks()
    semantic = request.load(seme)
    detail = detail_expert(request, dete, semantic)
    kappa = request.phases.sigma_kappa
    high, low = [s for s in steps if s[0] > kappa], [s for s in steps if s[0] <= kappa]

    def calls():
        with detail.semantic_phase(Expert(semantic)):
            out = [backbone.predict(semantic, x, s, cond) for s in high]
        with detail.phase():
            return out + [backbone.predict(detail.net, x, s, cond) for s in low]

    return calls


def sampling(cfg: dict, batch: int, warmup: int, repeats: int) -> dict:
    """Interleaved timing of every sampler and of its bare network calls at `batch` videos per call."""
    backbone, _ = load_teacher(cfg)
    seeds = list(range(batch))
    noise, cond = seeded_noise(backbone.latent_shape, seeds), backbone.encode_prompts([PROMPT] * batch)
    teacher_steps = cfg["sampling"]["teacher_steps"]
    reference, calls, schedules = layout.sample_set("teacher", teacher_steps), {}, {}
    for method, steps in [("teacher", teacher_steps)] + [(m, k) for k in STEPS for m in METHODS]:
        request = SamplerRequest(cfg, methods.check_request(cfg, method, steps), steps, PhaseSchedule.from_config(cfg),
                                 backbone, layout.run_dir(cfg), layout.own_point(cfg))
        sampler, name = build_sampler(request), layout.sample_set(method, steps)
        calls[name] = lambda sampler=sampler: sampler(noise, cond, seeds)
        calls[f"bare:{name}"] = bare_calls(request, noise, cond)
        schedules[name] = request.schedule
    with torch.no_grad():
        timing = interleaved_latency(calls, warmup, repeats, block=equal_call_blocks(list(calls), reference))
    median = {name: t["median_s"] for name, t in timing.items()}
    over_reference = speedups(timing, reference)
    speedup = {name: over_reference[name] for name in (f"{m}-{k}" for k in STEPS for m in METHODS)}
    sets = {n: timing[n] for n in [reference, *speedup]}  # the samplers, without their bare calls
    return {
        "batch": batch, "repeats": repeats, "warmup": warmup, "median_s": median,
        "speedup": speedup,
        "speedup_limit": {name: teacher_steps / int(name.rsplit("-", 1)[1]) for name in speedup},
        "rounds_above_limit": rounds_above_limit(sets, reference),
        "above_step_limit": above_step_limit(sets, reference),
        "dcm_step_over_pcm": {str(k): paired_ratio(timing, f"dcm-{k}", f"pcm-{k}") for k in STEPS},
        "dcm_step_over_lcm": {str(k): paired_ratio(timing, f"dcm-{k}", f"lcm-{k}") for k in STEPS},
        "sampler_overhead": {name: paired_ratio(timing, name, f"bare:{name}") for name in schedules},
        "sampler_overhead_quartiles": {name: round_quartiles(timing, name, f"bare:{name}") for name in schedules},
        "schedules": schedules,
        "calls_per_block": {name: timing[name]["calls_per_block"] for name in schedules},
    }


def _timed(command: list[str], scratch: Path, served: dict | None) -> tuple[float, float | None]:
    """(wall seconds, peak RSS in MB) of one subprocess, which must succeed. The peak comes from GNU time
    (/usr/bin/time): a child forked from this large process would report this process's RSS as its own. Through
    the stage server (`served`: its environment) no peak is known: the command is a relay, the stage a child of
    the server that starts with the server's preloaded pages."""
    report = scratch / "time.txt"
    start = time.perf_counter()
    proc = subprocess.run(command if served else ["/usr/bin/time", "-f", "%M", "-o", str(report), *command],
                          cwd=REPO, env=served, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    return wall, None if served else int(report.read_text().split()[-1]) / 1024


def stages(results: Path, step_counts: tuple[int, int], served: dict | None = None) -> dict:
    """Smoke-config stages as subprocesses (fresh, or through the stage server whose environment is `served`):
    wall, peak memory (fresh only), and steps/s and start-up of the training ones."""
    base = [sys.executable, "-m", "dcm"]
    common = ["--config", str(SMOKE), "--set", f"results_dir={results}", "--set", "tracking.enabled=false"]
    results.mkdir(parents=True, exist_ok=True)
    report = {}
    for stage in ("dataset", "teacher", "trajectories", *TRAINING_STAGES[1:]):
        if stage not in TRAINING_STAGES:
            wall, rss = _timed(base + [stage] + common, results, served)
            report[stage] = {"wall_s": wall, "peak_rss_mb": rss}
            continue
        options = base + [stage] + common + STAGE_OPTIONS.get(stage, [])
        runs = [_timed(options + ["--set", f"{stage}.steps={n}", "--set", f"{stage}.checkpoint_every={n}"], results,
                       served) for n in step_counts]
        (t1, _), (t2, rss) = runs
        # the longer run must take longer by more than the noise of a start-up; where it did not, no rate is known
        rate = (step_counts[1] - step_counts[0]) / (t2 - t1) if t2 > t1 else None
        report[stage] = {"steps_per_s": rate, "startup_s": t1 - step_counts[0] / rate if rate else None,
                         "wall_s": t2, "steps": step_counts[1],
                         "peak_rss_mb": None if served else max(rss, runs[0][1])}
    return report


def startup(results: Path, rounds: int) -> dict:
    """Wall seconds of one cheap stage (`schedule`: the grid, no training, imports diffusers) run in a fresh
    interpreter and through a warm stage server, alternating for `rounds` rounds; medians."""
    command = [sys.executable, "-m", "dcm", "schedule", "--config", str(SMOKE), "--set", f"results_dir={results}",
               "--set", "tracking.enabled=false"]
    fresh = stage_server.unserved()
    walls = {"fresh_s": [], "served_s": []}
    with stage_server.running(results / "stage.sock") as served:
        for _ in range(rounds):
            for label, env in (("fresh_s", fresh), ("served_s", served)):
                start = time.perf_counter()
                subprocess.run(command, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                walls[label].append(time.perf_counter() - start)
    return {label: statistics.median(values) for label, values in walls.items()} | {"rounds": rounds}


def cache_rates(results: Path) -> dict:
    """MB/s of reading (checksums verified) and writing the smoke run's trajectory cache."""
    from dcm.distillation import load_cache

    cfg = load_config(SMOKE, [f"results_dir={results}"])
    directory = layout.run_dir(cfg) / "trajectories"
    size_mb = sum(p.stat().st_size for p in directory.glob("*.safetensors")) / 1e6
    start = time.perf_counter()
    load_cache(cfg)
    read_s = time.perf_counter() - start
    tensors = {f"{p.stem}.{k}": v for p in directory.glob("*.safetensors") for k, v in load_tensors(p).items()}
    start = time.perf_counter()
    save_tensors(results / "rewrite.safetensors", tensors)
    write_s = time.perf_counter() - start
    return {"size_mb": size_mb, "read_mb_per_s": size_mb / read_s, "write_mb_per_s": size_mb / write_s}


def detail_parameters(cfg: dict) -> dict:
    """Parameters the detail expert adds (LoRA + copied timestep layers) on the tiny default and on
    HunyuanVideo at the authors' r = 128 (meta device: no memory, no download)."""
    from dcm.backbones.hunyuan_video import HunyuanVideoBackbone
    from diffusers import HunyuanVideoTransformer3DModel

    backbone, _ = load_teacher(cfg)
    counts = {}
    for name, net, adapter, rank in (
            ("tiny", backbone.new_network(cfg["backbone"]["model"]), backbone, cfg["dete"]["lora_rank"]),
            ("hunyuan_video", None, HunyuanVideoBackbone, 128)):
        if net is None:
            with torch.device("meta"):
                net = HunyuanVideoTransformer3DModel()
        base = sum(p.numel() for p in net.parameters())
        expert = attach_detail_expert(net, adapter, rank, 2 * rank)
        extra = detail_state_dict(expert)
        lora = sum(v.numel() for k, v in extra.items() if "lora_" in k)
        counts[name] = {"base": base, "lora_rank": rank, "lora": lora, "timestep_layers": sum(
            v.numel() for v in extra.values()) - lora, "extra_fraction": sum(v.numel() for v in extra.values()) / base}
    return counts


def noop(repeats: int) -> dict:
    """No-op `snakemake` and `dvc repro` on the smoke config (benchmarks/noop.py, which runs it once first)."""
    from benchmarks.noop import NO_OPS, median_seconds, prepare

    workdir = Path(tempfile.mkdtemp(prefix="dcm-noop-"))
    try:
        prepare(workdir / "repo")
        return {label: median_seconds(workdir / "repo", command, idle, repeats)[0] for label, command, idle in NO_OPS}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def physical_faults(result: dict) -> list[str]:
    """Every speed-up above its step-count limit in more rounds than noise explains (a timing fault,
    above_step_limit), as error lines."""
    return [f"batch {run['batch']}: {name} speed-up {run['speedup'][name]:.2f}x is above the "
            f"{run['speedup_limit'][name]:.2f}x limit of its step count in {run['rounds_above_limit'][name]} of "
            f"{run['repeats']} rounds (sign test p < 0.01)"
            for run in result["sampling"] for name in run["above_step_limit"]]


def to_markdown(result: dict) -> str:
    """The figures as Markdown tables."""
    lines = [f"Machine: {result['machine']}. Sampling: tiny default network shape, random weights, "
             f"{result['threads']} threads; medians of interleaved rounds, each sampler timed in blocks that make as "
             "many network calls as one teacher run (a k-step sampler run 50/k times back to back), ratios "
             "paired by round.", ""]
    for run in result["sampling"]:
        lines += [f"**Batch {run['batch']}** ({run['repeats']} rounds)", "",
                  "| steps | " + " | ".join(f"{m} speed-up" for m in METHODS) + " | DCM/PCM per step | DCM/LCM per step |",
                  "|---|" + "---|" * (len(METHODS) + 2)]
        for k in STEPS:
            lines.append(f"| {k} | " + " | ".join(f"{run['speedup'][f'{m}-{k}']:.2f}x" for m in METHODS) +
                         f" | {run['dcm_step_over_pcm'][str(k)]:.3f} | {run['dcm_step_over_lcm'][str(k)]:.3f} |")
        lines += ["", "Sampler time over its bare network calls (median of rounds [quartiles]): " + ", ".join(
            f"{n} {v:.3f} [{run['sampler_overhead_quartiles'][n][0]:.2f}, {run['sampler_overhead_quartiles'][n][1]:.2f}]"
            for n, v in run["sampler_overhead"].items()), ""]
    lines += ["| stage | steps/s | start-up s | wall s | peak RSS MB |", "|---|---|---|---|---|"]
    for stage, s in result["stages"].items():
        if "steps_per_s" not in s:  # not a training stage
            rate, startup = "", ""
        elif s["steps_per_s"] is None:
            rate, startup = "noise > difference", ""
        else:
            rate, startup = f"{s['steps_per_s']:.2f}", f"{s['startup_s']:.2f}"
        rss = "served" if s["peak_rss_mb"] is None else f"{s['peak_rss_mb']:.0f}"
        lines.append(f"| {stage} | {rate} | {startup} | {s['wall_s']:.2f} | {rss} |")
    c = result["cache"]
    lines += ["", f"Trajectory cache ({c['size_mb']:.2f} MB): read {c['read_mb_per_s']:.0f} MB/s (checksums "
              f"verified), write {c['write_mb_per_s']:.0f} MB/s.", ""]
    u = result["startup"]
    lines += [f"Stage start-up (`python -m dcm schedule`, median of {u['rounds']} interleaved rounds): fresh "
              f"interpreter {u['fresh_s']:.2f} s, through a warm stage server {u['served_s']:.2f} s.", ""]
    for name, d in result["detail_parameters"].items():
        lines.append(f"DetE extra parameters, {name} (r={d['lora_rank']}): LoRA {d['lora'] / 1e6:.3f} M + timestep "
                     f"layers {d['timestep_layers'] / 1e6:.3f} M = {100 * d['extra_fraction']:.2f}% of "
                     f"{d['base'] / 1e6:.2f} M.")
    lines.append("")
    if result["noop"]:
        lines.append("No-op: " + ", ".join(f"{k} {v:.2f} s" for k, v in result["noop"].items()) + ".")
    else:
        lines.append("No-op snakemake / dvc repro: not measured in --quick (benchmarks/noop.py runs the smoke "
                     "workflow first).")
    lines += [f"**Error:** {e}" for e in result["errors"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="batch 1 only, fewer rounds, stages through a warm stage "
                        "server (no peak memory), no no-op runs (<2 min)")
    parser.add_argument("--out", type=Path, default=REPO / "results/benchmarks", help="where the files go")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dcm-bench-") as tmp:
        cfg = load_config(CONFIG, [f"results_dir={tmp}/tiny", "tracking.enabled=false"])
        torch.set_num_threads(cfg["threads"])
        torch.manual_seed(0)
        random_run(cfg, STEPS)
        rounds = QUICK_ROUNDS if args.quick else FULL_ROUNDS
        result = {"machine": f"{device_name()}, {os.cpu_count()} cores, {platform.platform()}",
                  "threads": cfg["threads"], "quick": args.quick,
                  "sampling": [sampling(cfg, batch, warmup, repeats) for batch, (warmup, repeats) in rounds.items()]}
        result["speedup"] = result["sampling"][0]["speedup"]
        result["dcm_step_over_pcm"] = result["sampling"][0]["dcm_step_over_pcm"]
        result["sampler_overhead"] = {}
        for name, ratio in result["sampling"][0]["sampler_overhead"].items():
            method, steps = name.rsplit("-", 1)
            result["sampler_overhead"].setdefault(method, {})[steps] = ratio
        if args.quick:  # ~0.5 s of start-up per stage instead of ~5 s; no peak memory
            with stage_server.running(Path(tmp) / "stages.sock") as served:
                result["stages"] = stages(Path(tmp) / "smoke", (2, 60), served)
        else:
            result["stages"] = stages(Path(tmp) / "smoke", (2, 300))
        result["cache"] = cache_rates(Path(tmp) / "smoke")
        result["startup"] = startup(Path(tmp) / "smoke", 2 if args.quick else 7)
        result["detail_parameters"] = detail_parameters(cfg)
    result["noop"] = None if args.quick else noop(repeats=5)
    result["errors"] = physical_faults(result)
    result["wall_s"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmarks.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "benchmarks.md").write_text(to_markdown(result))
    print(to_markdown(result))
    print(f"wrote {args.out / 'benchmarks.json'} and .md in {result['wall_s']:.0f} s")
    for error in result["errors"]:
        print(f"error: {error}", file=sys.stderr)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

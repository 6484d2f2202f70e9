"""Generate dvc.yaml from the Snakemake workflow: one DVC stage per job of its DAG (wiring only).

    .venv/bin/python workflow/dvc_yaml.py                                  # dvc.yaml for config/config.yaml
    .venv/bin/python workflow/dvc_yaml.py --check                          # exit 1 with a diff on drift
    .venv/bin/python workflow/dvc_yaml.py --configfile config/smoke.yaml --output dvc.yaml

Snakemake itself lists the jobs (a forced dry run through its API; each job arrives as the JOB_INFO log
event that logger plugins receive), so new rules appear here without edits.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import re
import shlex
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the dcm package of this checkout, as the Snakefile sees it (not an installed one)

from dcm import layout  # noqa: E402  (after the path above)

DEFAULT_CONFIG = "config/config.yaml"
# The stage commands run with the interpreter `./scripts/setup.sh` creates, from the repo root.
INTERPRETER = ".venv/bin/python"
PACKAGE_SOURCE = "dcm"
HEADER = ("# Generated from the Snakemake workflow by `.venv/bin/python workflow/dvc_yaml.py{args}`: do not edit,\n"
          "# regenerate (tests/test_dvc.py fails when this file and the rules disagree).\n")

# Config sections each rule's command reads (`{wildcard}` is filled per job); the training stages of the
# method registry and the samplers add what their entries read (`job_sections`). A rule not listed here
# depends on its whole config file: correct, if eager.
RULE_PARAMS = {
    "dataset": ["seed", "backbone", "data"],
    "teacher": ["seed", "backbone", "teacher", "schedule", "distill"],
    "trajectories": ["seed", "backbone", "schedule", "trajectories"],
    "trajectory_shards": ["seed", "backbone", "schedule", "trajectories"],
    "latents": ["backbone", "trajectories"],
    "seme": ["seed", "backbone", "schedule", "distill", "seme", "variants"],
    "dete": ["seed", "backbone", "schedule", "distill", "dete", "variants"],
    "weightdiff": ["backbone", "variants"],
    "sample": ["seed", "backbone", "schedule", "sampling"],
    "latency": ["seed", "backbone", "schedule", "sampling", "tables"],
    "compare": ["backbone", "schedule", "sampling"],
    "evaluate": ["seed", "backbone", "data", "sampling", "evaluate"],
    "trajdist": ["schedule", "trajdist"],
    "table": ["seed", "extra_train_seeds", "sampling", "variants", "tables"],
    "kappa_table": ["schedule", "tables", "kappa_sweep"],
    "figures": ["backbone", "data", "schedule", "seme", "sampling", "evaluate", "tables", "variants", "kappa_sweep"],
    "userstudy": ["seed", "userstudy"],
    "table2": ["userstudy"],
}
# Outputs DVC keeps in place while their stage reruns (it deletes other outputs first): the expensive
# training results and the trajectory cache.
PERSISTENT_RULES = {"teacher", "trajectories", "seme", "dete", "baseline"}
# JSON score files inside a rule's output directory, for `dvc metrics show`; outputs that are .json
# files themselves are metrics too.
SCORE_FILES = {"teacher": ["prompt_following.json"], "compare": ["distances.json"], "evaluate": ["scores.json"],
               "latency": ["latency.json"],
               "table": ["table{table}.json"], "kappa_table": ["kappa_sweep.json"]}
# Per-step training curves (layout.METRICS_TABLE inside their output) for `dvc plots show`: DVC reads CSV, not JSONL.
CURVE_RULES = {"teacher", "seme", "dete", "baseline"}
# `use rule X as X_at_kappa` / `X_at_seed` (workflow/rules): rule X at one point of the kappa sweep or for one
# more training seed, configured as X
POINT_SUFFIXES = ("_at_kappa", "_at_seed")
# other `use rule X as Y` rules configured as X: the training stages that make one network per phase count
USED_RULES = {"phased_baseline": "baseline"}


def snakemake_jobs(configfiles: list[Path]) -> list[dict]:
    """Every job of the workflow's DAG for these config files (a forced dry run through Snakemake's API)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (ConfigSettings, DAGSettings, OutputSettings, Quietness,
                                          ResourceSettings, StorageSettings)
    from snakemake_interface_logger_plugins.common import LogEvent

    jobs: list[dict] = []

    class JobCollector(logging.Handler):
        """Keeps the JOB_INFO events of a dry run."""

        def emit(self, record: logging.LogRecord) -> None:
            """Record one job's rule, wildcards, files and shell command."""
            if getattr(record, "event", None) == LogEvent.JOB_INFO:
                jobs.append({key: getattr(record, key) for key in
                             ("rule_name", "wildcards", "input", "output", "log", "shellcmd")})

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        logging.getLogger("snakemake.logging").addHandler(JobCollector())
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1),
                                config_settings=ConfigSettings(configfiles=configfiles),
                                storage_settings=StorageSettings(), snakefile=REPO / "Snakefile", workdir=REPO)
        try:
            workflow.dag(DAGSettings(forceall=True)).execute_workflow(executor="dryrun")
        except Exception as err:  # Snakemake raises many types; each names the problem in its message
            raise SystemExit(f"error: Snakemake could not build the DAG for {' + '.join(map(str, configfiles))}: "
                             f"{type(err).__name__}: {err}") from err
    return sorted(jobs, key=stage_name)


def stage_name(job: dict) -> str:
    """DVC stage name: the rule, then its wildcard values (`sample-dcm-4`, `seme-tc`), with `_` for the
    punctuation DVC refuses in names (`sample-seme+vcm-4` becomes `sample-seme_vcm-4`)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", "-".join([job["rule_name"], *map(str, job["wildcards"].values())]))


def base_rule(job: dict) -> str:
    """The rule whose settings above a job takes: its own, or X for X_at_kappa, X_at_seed and USED_RULES."""
    rule = job["rule_name"]
    for suffix in POINT_SUFFIXES:
        rule = rule.removesuffix(suffix)
    return USED_RULES.get(rule, rule)


def repo_relative(path: str | Path, what: str) -> str:
    """`path` relative to the repo root; an error when it lies outside (DVC tracks only repo paths)."""
    absolute = (REPO / path).resolve() if not Path(path).is_absolute() else Path(path).resolve()
    if not absolute.is_relative_to(REPO):
        raise SystemExit(f"error: {what} {path} lies outside the repository {REPO}: DVC cannot track it")
    return absolute.relative_to(REPO).as_posix()


def portable_command(job: dict) -> str:
    """The rule's shell command with the repo's interpreter and repo-relative paths."""
    command = job["shellcmd"].replace(shlex.quote(sys.executable), INTERPRETER, 1).replace(f"{REPO}/", "")
    if str(REPO) in command or not command.startswith(f"{INTERPRETER} "):
        raise SystemExit(f"error: rule {job['rule_name']}: cannot make its command portable "
                         f"(expected `<python> -m dcm ...` with repo paths): {job['shellcmd']}")
    return command


def job_sections(job: dict, cfg: dict) -> list[str] | None:
    """The config sections one job reads: its rule's, plus its registry entry's; None for the whole config."""
    from dcm import methods
    from dcm.layout import parse_sample_set

    rule, wildcards = base_rule(job), job["wildcards"]
    if rule == "baseline":
        return list(methods.TRAINERS[wildcards["baseline"]].reads)
    sections = RULE_PARAMS.get(rule)
    if rule == "sample":
        sections = [*sections, *methods.method(cfg, wildcards["method"]).reads]
    if rule == "latency":
        sections = [*sections, *(s for name in methods.table1_sets(cfg)
                                 for s in methods.method(cfg, parse_sample_set(name)[0]).reads)]
    return sections


def stage_params(job: dict, configs: dict[str, dict], cfg: dict) -> list:
    """DVC params of one job: the config sections it reads that each config file sets."""
    sections = job_sections(job, cfg)
    if sections is None:
        return [{path: None} for path in configs]  # the whole file
    wanted = list(dict.fromkeys(s.format(**job["wildcards"]) for s in sections))
    return [{path: [s for s in wanted if s in cfg]} for path, cfg in configs.items()
            if any(s in cfg for s in wanted)]


def dvc_stage(job: dict, configs: dict[str, dict], cfg: dict) -> dict:
    """One DVC stage for one Snakemake job."""
    if not job["shellcmd"]:
        raise SystemExit(f"error: rule {job['rule_name']} has no shell command: DVC can only run shell commands")
    logs = [repo_relative(p, "log") for p in job["log"]]
    log_dirs = sorted({str(Path(p).parent) for p in logs})
    persist = base_rule(job) in PERSISTENT_RULES
    stage = {"cmd": ([f"mkdir -p {shlex.join(log_dirs)}"] if log_dirs else []) + [portable_command(job)],
             "deps": list(dict.fromkeys([repo_relative(p, "input") for p in job["input"]] + [PACKAGE_SOURCE]))}
    params = stage_params(job, configs, cfg)
    if params:
        stage["params"] = params
    stage["outs"] = [{repo_relative(p, "output"): {"persist": True}} if persist else repo_relative(p, "output")
                     for p in job["output"]] + [{p: {"cache": False}} for p in logs]
    return stage


def metric_files(job: dict) -> list[str]:
    """JSON score files a job writes."""
    outputs = [repo_relative(p, "output") for p in job["output"]]
    inside = [f"{out}/{name.format(**job['wildcards'])}" for out in outputs
              for name in SCORE_FILES.get(base_rule(job), [])]
    return [out for out in outputs if out.endswith(".json")] + inside


def curve_plots(job: dict) -> list[dict]:
    """Training-curve plot definitions of a job (loss against step)."""
    if base_rule(job) not in CURVE_RULES:
        return []
    return [{f"{repo_relative(p, 'output')}/{layout.METRICS_TABLE}": {"x": "step", "y": "loss"}} for p in job["output"]]


def dvc_document(configfiles: list[Path]) -> dict:
    """The whole dvc.yaml for these config files, as a mapping."""
    from dcm.config import load_config

    configs = {repo_relative(f, "config file"): yaml.safe_load(f.read_text()) or {} for f in configfiles}
    cfg = load_config(configfiles)
    jobs = [job for job in snakemake_jobs(configfiles) if job["rule_name"] != "all"]
    names = [stage_name(job) for job in jobs]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise SystemExit(f"error: several jobs map to the DVC stage name(s) {clash}")
    return {"stages": {stage_name(job): dvc_stage(job, configs, cfg) for job in jobs},
            "metrics": [m for job in jobs for m in metric_files(job)],
            "plots": [p for job in jobs for p in curve_plots(job)]}


def render(document: dict, configfiles: list[str]) -> str:
    """dvc.yaml text: a header saying how it was made, then the document."""
    args = "".join(f" --configfile {shlex.quote(f)}" for f in configfiles if f != DEFAULT_CONFIG)
    return HEADER.format(args=args) + yaml.safe_dump(document, sort_keys=False, width=120)


def differing_stages(old: dict, new: dict) -> list[str]:
    """Names of stages added, removed or changed between two dvc.yaml documents."""
    old_stages, new_stages = (old or {}).get("stages", {}), new["stages"]
    return [f"{name} ({'added' if name not in old_stages else 'removed' if name not in new_stages else 'changed'})"
            for name in sorted(old_stages.keys() | new_stages.keys())
            if old_stages.get(name) != new_stages.get(name)]


def check(path: Path, text: str, document: dict) -> int:
    """0 when `path` holds `text`; else print the differing stages and a unified diff and return 1."""
    current = path.read_text() if path.is_file() else ""
    if current == text:
        print(f"{path}: up to date with the Snakemake workflow")
        return 0
    changed = differing_stages(yaml.safe_load(current) if current else {}, document)
    print(f"{path} differs from what the Snakemake workflow gives; regenerate it with "
          f"`.venv/bin/python workflow/dvc_yaml.py`.", file=sys.stderr)
    print("stages that differ: " + (", ".join(changed) or "none (metrics, plots or header)"), file=sys.stderr)
    sys.stderr.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                               f"{path} (committed)", f"{path} (from the Snakefile)"))
    return 1


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Command line: write or check dvc.yaml."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", action="append", metavar="FILE",
                        help=f"workflow config (repeatable, merged in order as Snakemake does; default {DEFAULT_CONFIG})")
    parser.add_argument("--output", default=str(REPO / "dvc.yaml"), help="dvc.yaml to write or check")
    parser.add_argument("--check", action="store_true", help="compare with --output instead of writing it")
    args = parser.parse_args(argv)
    configfiles = [Path(f).resolve() for f in args.configfile or [REPO / DEFAULT_CONFIG]]
    for f in configfiles:
        if not f.is_file():
            raise SystemExit(f"error: --configfile {f}: no such file")
    document = dvc_document(configfiles)
    text = render(document, [repo_relative(f, "config file") for f in configfiles])
    if args.check:
        return check(Path(args.output), text, document)
    write_atomically(Path(args.output), text)
    print(f"wrote {args.output}: {len(document['stages'])} stages")
    return 0


if __name__ == "__main__":
    sys.exit(main())

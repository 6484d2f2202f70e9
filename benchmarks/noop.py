"""No-op cost of the two front doors: how long `snakemake` and `dvc repro` take when nothing is to be done.

    .venv/bin/python benchmarks/noop.py [--repeats 5] [--keep]

On the smoke config, in a throwaway git copy of this working tree: runs the workflow once with
`snakemake --cores 2`, records its outputs for DVC (`dvc commit`) and runs `dvc repro` once, then times
repeated no-op runs of each and prints the medians against the 2 s goal.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.workspace import commit, copy_working_tree  # noqa: E402

GOAL_S = 2.0
SMOKE = "config/smoke.yaml"
SNAKEMAKE = (".venv/bin/snakemake", "--cores", "2", "--configfile", SMOKE)
DVC_REPRO = (".venv/bin/dvc", "repro")
NO_OPS = (("snakemake", SNAKEMAKE, "Nothing to be done"), ("dvc repro", DVC_REPRO, "Data and pipelines are up to date"))


def run(repo: Path, command: tuple[str, ...], timeout: int = 3600) -> subprocess.CompletedProcess:
    """Run `command` in `repo` under a hard kill timeout (Snakemake ignores SIGTERM); fail loudly."""
    proc = subprocess.run(["timeout", "-s", "KILL", str(timeout), *command], cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} failed ({proc.returncode}) in {repo}:\n{proc.stderr[-3000:]}")
    return proc


def median_seconds(repo: Path, command: tuple[str, ...], idle: str, repeats: int) -> tuple[float, list[float]]:
    """Median wall time of `repeats` runs of `command`, each of which must report `idle` (nothing to do)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        proc = run(repo, command, timeout=600)
        times.append(time.perf_counter() - start)
        if idle not in proc.stdout + proc.stderr:
            raise SystemExit(f"error: {' '.join(command)} was not a no-op:\n{proc.stdout[-2000:]}")
    return statistics.median(times), times


def prepare(repo: Path) -> None:
    """A git copy with dvc.yaml for the smoke config, whose outputs are made and known to both tools."""
    copy_working_tree(repo)
    run(repo, (".venv/bin/python", "workflow/dvc_yaml.py", "--configfile", SMOKE))
    commit(repo, "dvc.yaml for the smoke config")
    start = time.perf_counter()
    run(repo, SNAKEMAKE)
    print(f"snakemake, full smoke workflow: {time.perf_counter() - start:.0f} s")
    run(repo, (".venv/bin/dvc", "commit", "--force"))  # adopt what Snakemake made instead of rerunning it
    ran = run(repo, DVC_REPRO).stdout.count("Running stage")
    print(f"dvc repro after dvc commit: {ran} stage(s) ran")


def main(argv: list[str] | None = None) -> int:
    """Prepare the copy, time both no-ops and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed no-op runs of each tool")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy and print its path")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="dcm-noop-"))
    try:
        repo = workdir / "repo"
        prepare(repo)
        for label, command, idle in NO_OPS:
            median, times = median_seconds(repo, command, idle, args.repeats)
            print(f"no-op {label:9s}: median {median:.2f} s over {args.repeats} runs "
                  f"({', '.join(f'{t:.2f}' for t in times)}); {median / GOAL_S:.2f}x the {GOAL_S:.0f} s goal")
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

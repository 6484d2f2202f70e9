"""The DVC front door: dvc.yaml stays what the Snakefile gives, one stage reruns alone on a param change,
push/pull round-trips outputs byte for byte, and metrics and plots show (smoke config, in a git copy)."""

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from benchmarks.workspace import commit, copy_working_tree, git
from dcm.stage_server import unserved

SMOKE = "config/smoke.yaml"


def run(repo: Path, *command: str, timeout: int = 900, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command of the repo's venv (`dvc`, `python`) in `repo` under a hard kill timeout."""
    proc = subprocess.run(["timeout", "-s", "KILL", str(timeout), f".venv/bin/{command[0]}", *command[1:]],
                          cwd=repo, capture_output=True, text=True, env=unserved())  # the copy's own dcm, fresh
    if check and proc.returncode != 0:
        raise AssertionError(f"{command} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc


def generate(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`workflow/dvc_yaml.py ARGS` in `repo`."""
    return run(repo, "python", "workflow/dvc_yaml.py", *args, check=check)


def digests(directory: Path) -> dict[str, str]:
    """sha256 of every file under `directory`, by relative path."""
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def lock_entry(repo: Path, stage: str) -> dict:
    """The dvc.lock record of one stage."""
    return yaml.safe_load((repo / "dvc.lock").read_text())["stages"][stage]


def test_committed_dvc_yaml_matches_the_workflow(tmp_path):
    repo = copy_working_tree(tmp_path / "repo")
    proc = generate(repo, "--check", check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_check_fails_and_names_the_stage_when_a_rule_changes(tmp_path):
    repo = copy_working_tree(tmp_path / "repo")
    rules = repo / "workflow" / "rules" / "teacher.smk"
    text = rules.read_text()
    assert text.count("logs/teacher.log") == 1
    rules.write_text(text.replace("logs/teacher.log", "logs/teacher-renamed.log"))
    proc = generate(repo, "--check", check=False)
    assert proc.returncode == 1, proc.stderr[-4000:]
    assert "stages that differ: teacher (changed)" in proc.stderr
    assert "+    - results/tiny/logs/teacher-renamed.log:" in proc.stderr


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory):
    """A git copy whose dvc.yaml is generated for the smoke config, after `dvc repro teacher`."""
    repo = copy_working_tree(tmp_path_factory.mktemp("dvc") / "repo")
    config = repo / SMOKE
    config.write_text(config.read_text() + "tracking: {enabled: false}\n")  # MLflow is tested elsewhere
    generate(repo, "--configfile", SMOKE)
    commit(repo, "dvc.yaml for the smoke config")
    run(repo, "dvc", "repro", "teacher")
    return repo


def test_outputs_stay_ignored_by_git(smoke_repo):
    changed = git(smoke_repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert changed == ["?? dvc.lock"]  # no output and no .gitignore DVC wrote under results/
    assert (smoke_repo / "results" / "smoke" / "teacher" / "network").is_dir()


def test_param_change_reruns_exactly_that_stage(smoke_repo):
    outputs = {name: smoke_repo / "results" / "smoke" / name for name in ("dataset", "teacher")}
    mtimes = {name: path.stat().st_mtime_ns for name, path in outputs.items()}
    dataset_lock = lock_entry(smoke_repo, "dataset")
    config = smoke_repo / SMOKE
    cfg = yaml.safe_load(config.read_text())
    cfg["teacher"]["steps"] += 1
    config.write_text(yaml.safe_dump(cfg))

    status = json.loads(run(smoke_repo, "dvc", "status", "--with-deps", "--json", "teacher").stdout)
    assert set(status) == {"teacher"}
    proc = run(smoke_repo, "dvc", "repro", "teacher")
    assert "Stage 'dataset' didn't change, skipping" in proc.stdout
    assert "Running stage 'teacher'" in proc.stdout
    assert lock_entry(smoke_repo, "dataset") == dataset_lock
    assert outputs["dataset"].stat().st_mtime_ns == mtimes["dataset"]
    assert outputs["teacher"].stat().st_mtime_ns != mtimes["teacher"]
    assert lock_entry(smoke_repo, "teacher")["params"][SMOKE]["teacher"]["steps"] == cfg["teacher"]["steps"]
    steps = (outputs["teacher"] / "metrics.jsonl").read_text().splitlines()
    assert len(steps) == cfg["teacher"]["steps"]


def test_push_then_pull_restores_identical_bytes(smoke_repo):
    outputs = [smoke_repo / "results" / "smoke" / name for name in ("dataset", "teacher")]
    before = {out: digests(out) for out in outputs}
    run(smoke_repo, "dvc", "push", "dataset", "teacher")
    assert (smoke_repo / "dvc-storage" / "files" / "md5").is_dir()  # the default remote, inside the clone
    assert "dvc-storage" not in git(smoke_repo, "status", "--porcelain", "--untracked-files=all")
    for out in outputs:
        subprocess.run(["rm", "-rf", str(out)], check=True)
    subprocess.run(["rm", "-rf", str(smoke_repo / ".dvc" / "cache")], check=True)  # so bytes come from the remote
    run(smoke_repo, "dvc", "pull", "dataset", "teacher")
    assert {out: digests(out) for out in outputs} == before
    status = json.loads(run(smoke_repo, "dvc", "status", "--json", "dataset", "teacher").stdout)
    assert status == {}


def test_metrics_and_plots_show(smoke_repo, tmp_path):
    metrics = json.loads(run(smoke_repo, "dvc", "metrics", "show", "--json").stdout)
    files = metrics[""]["data"]
    prompt_following = files["results/smoke/teacher/prompt_following.json"]["data"]
    assert 0.0 <= prompt_following["eval"]["colour"] <= 1.0
    assert "error" in files["results/smoke/compare/distances.json"]  # declared, not made on this run

    assert (smoke_repo / "results" / "smoke" / "teacher" / "metrics.csv").is_file()  # written by the training loop
    plots = json.loads(run(smoke_repo, "dvc", "plots", "show", "--json", "-o", str(tmp_path / "plots")).stdout)
    teacher_curve = plots["data"]["results/smoke/teacher/metrics.csv"][0]
    assert teacher_curve["type"] == "vega"
    points = teacher_curve["content"]["data"]["values"]
    assert [int(p["step"]) for p in points] == list(range(1, len(points) + 1))
    run(smoke_repo, "dvc", "plots", "show", "-o", str(tmp_path / "html"))
    assert "results/smoke/teacher/metrics.csv" in (tmp_path / "html" / "index.html").read_text()

"""Every refusal of a config or argument the workflow cannot run, through `python -m dcm` and `snakemake -n`:
one line naming the key and value, a non-zero exit, no traceback, nothing written."""

import subprocess
import sys

import pytest
import yaml

from dcm.config import apply_overrides
from tests.helpers import REPO, SMOKE

# (overrides of the smoke config, text the one-line error must contain)
BAD_CONFIGS = [
    (["sampling.steps=[4, 3]"], "sampling.steps contains 3: pcm-3 cannot be sampled"),
    (["sampling.steps=[6]", "tables.ablation_steps=6", "pcm.phases=4"], "sampling.steps contains 6: pcm-6"),
    (["pcm.phases=3"], "sampling.steps contains 4: pcm-4 cannot be sampled: it is not a multiple of the 3 phases"),
    (["sampling.steps=[4, 5]"], "sampling.steps contains 5"),
    (["sampling.steps=[0]"], "sampling.steps.0"),
    (["sampling.steps=[-2]"], "sampling.steps.0"),
    (["schedule.num_steps=8"], "sampling.teacher_steps=10 exceeds schedule.num_steps=8"),
    (["schedule.kappa=10"], "schedule.kappa=10 is outside the teacher grid"),
    (["schedule.kappa=9"], "schedule.kappa=9, schedule.num_steps=10"),
    (["kappa_sweep.values=[9]"], "kappa_sweep.values contains 9"),
    (["kappa_sweep.values=[0]"], "kappa_sweep.values contains 0, outside the teacher grid"),
    (["userstudy.comparisons=[[dcm, sd3]]"], "userstudy.comparisons names 'sd3'"),
    (["userstudy.steps=3"], "userstudy.steps=3"),
    (["sampling.seeds=[]"], "sampling.seeds"),
    (["data.holdout_prompts=48"], "data.holdout_prompts=48 holds out every one of the 48 prompts"),
    (["data.object_size=9"], "data.object_size=9"),
    (["tables.method=vcm"], "tables.method='vcm'"),
]


def _one_line_error(proc, needle, code):
    assert proc.returncode == code, proc.stdout[-1000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr


@pytest.mark.parametrize("overrides,needle", BAD_CONFIGS)
def test_bad_config_is_refused_by_the_cli(tmp_path, overrides, needle):
    sets = [a for o in overrides for a in ("--set", o)]
    proc = subprocess.run([sys.executable, "-m", "dcm", "dataset", "--config", str(SMOKE), *sets,
                           "--set", f"results_dir={tmp_path / 'results'}"], cwd=REPO, capture_output=True, text=True)
    _one_line_error(proc, needle, 2)
    assert not (tmp_path / "results").exists()  # nothing written, not even a tracking store


@pytest.mark.parametrize("overrides,needle", BAD_CONFIGS)
def test_bad_config_is_refused_by_snakemake(tmp_path, overrides, needle):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(apply_overrides(yaml.safe_load(SMOKE.read_text()), overrides)))
    snakemake = str(__import__("pathlib").Path(sys.executable).with_name("snakemake"))
    proc = subprocess.run([snakemake, "-n", "--configfile", str(config), "--config", f"results_dir={tmp_path / 'r'}"],
                          cwd=REPO, capture_output=True, text=True)
    _one_line_error(proc, needle, 1)
    assert str(config) in proc.stderr and not (tmp_path / "r").exists()


@pytest.mark.parametrize("args,needle", [
    (["sample", "--method", "teacher", "--steps", "0"], "--steps 0: teacher-0 cannot be sampled: a step count"),
    (["sample", "--method", "dcm", "--steps", "-2"], "--steps -2"),
    (["sample", "--method", "dcm", "--steps", "3"], "--steps 3: dcm-3 cannot be sampled"),
    (["sample", "--method", "pcm", "--steps", "12"], "--steps 12: pcm-12"),
    (["evaluate", "--method", "sd3", "--steps", "4"], "unknown method 'sd3'; known: teacher, lcm, pcm"),
    (["sample", "--method", "seme+lcm", "--steps", "4"], "mixed method 'seme+lcm'"),
    (["seme", "--variant", "nope"], "unknown variant 'nope'"),
    (["sample", "--method", "pcm", "--steps", "4", "--kappa", "4"], "--kappa 4 applies to methods made of SemE"),
    (["sample", "--method", "dcm", "--steps", "4", "--kappa", "12"], "--kappa 12: schedule.kappa=12"),
])
def test_bad_arguments_are_refused_before_any_work(tmp_path, args, needle):
    proc = subprocess.run([sys.executable, "-m", "dcm", *args, "--config", str(SMOKE), "--set",
                           f"results_dir={tmp_path / 'results'}"], cwd=REPO, capture_output=True, text=True)
    _one_line_error(proc, needle, 2)
    assert not (tmp_path / "results").exists()

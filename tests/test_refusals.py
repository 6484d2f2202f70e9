"""The bad-input suite: every config, config file, stage argument and Snakemake target the workflow cannot run is
refused by `python -m dcm` and by `snakemake -n` with one `error:` line naming the key, file or value, a non-zero
exit, no traceback and nothing written. The CLI cases call `dcm.cli.main` in this process (the subprocess cases
below show it is the same front door); Snakemake runs as a subprocess."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dcm.config import apply_overrides
from tests.helpers import REPO, SMOKE, dcm_in_process

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

# (overrides of the smoke config, text the one-line error must contain)
BAD_CONFIGS = [
    # pcm-3 has 3 phases; the first variant (YAML order) of the 2-phase cut is refused
    (["sampling.steps=[4, 3]"], "-3 cannot be sampled: it is not a multiple of the 2 phases"),
    (["sampling.steps=[4, 3]", "pcm.phases=4"], "sampling.steps contains 3: pcm-3 cannot be sampled"),
    (["pcm.phases=0"], "invalid value at 'pcm.phases'"),
    (["pcm.phases=all"], "invalid value at 'pcm.phases'"),
    (["sampling.steps=[6]", "tables.ablation_steps=6", "pcm.phases=4"], "sampling.steps contains 6: pcm-6"),
    (["pcm.phases=3"], "sampling.steps contains 4: pcm-4 cannot be sampled: it is not a multiple of the 3 phases"),
    (["sampling.steps=[4, 5]"], "sampling.steps contains 5"),
    (["sampling.steps=[0]"], "sampling.steps.0"),
    (["sampling.steps=[-2]"], "sampling.steps.0"),
    (["schedule.num_steps=8"], "sampling.teacher_steps=10 exceeds schedule.num_steps=8"),
    (["schedule.expert_phases=5"], "schedule.expert_phases=5 sub-phases need as many grid intervals in each expert's "
                                   "phase, but the semantic phase [10, 6] has 4"),
    (["schedule.kappa=10"], "schedule.kappa=10 is outside the teacher grid"),
    (["schedule.kappa=0"], "schedule.kappa=0"),
    (["schedule.kappa=9"], "schedule.kappa=9, schedule.num_steps=10"),
    (["schedule.shift=0"], "schedule.shift"),
    (["kappa_sweep.values=[9]"], "kappa_sweep.values contains 9"),
    (["kappa_sweep.values=[0]"], "kappa_sweep.values contains 0, outside the teacher grid"),
    (["kappa_sweep.values=[6, 10]"], "kappa_sweep.values contains 10"),
    (["kappa_sweep.values=[1]"], "kappa_sweep.values contains 1"),  # 4 steps need 2 grid points per phase
    (["kappa_sweep.values=[5, 5]"], "kappa_sweep.values"),
    (["userstudy.comparisons=[[dcm, sd3]]"], "userstudy.comparisons names 'sd3'"),
    (["userstudy.comparisons=[[dcm]]"], "userstudy.comparisons.0"),
    (["userstudy.steps=3"], "userstudy.steps=3"),
    (["sampling.seeds=[]"], "sampling.seeds"),
    (["sampling.seeds=[0, 0]"], "sampling.seeds"),
    (["data.holdout_prompts=48"], "data.holdout_prompts=48 holds out every one of the 48 prompts"),
    (["data.object_size=9"], "data.object_size=9"),
    (["data.prompt_file=prompts.txt"], "data.prompt_file=prompts.txt is not read by backbone.name=tiny"),
    (["tables.method=vcm"], "tables.method='vcm'"),
    (["variants={}"], "tables.method='dcm' is not one of []"),
    (["variants.dcm.gan=maybe"], "variants.dcm.gan"),
    (["backbone.name=sora"], "backbone.name"),
    (["threads=0"], "threads"),
    (["name=null"], "name"),
    (["seme.steps=many"], "seme.steps"),
    (["seme.learning_rate=0.1"], "learning_rate"),
    (["seme.lr=-1"], "seme.lr"),
    (["distill.loss=l3"], "distill.loss"),
    (["trajectories.shard_size=0"], "trajectories.shard_size"),
    (["trajectories.jobs=4"], "trajectories.jobs=4 exceeds the 3 shards"),
    (["tracking.uri=5"], "tracking.uri"),
    (["extra_train_seeds=[1, 0]"], "extra_train_seeds=[1, 0] contains the run's own seed=0"),
]

# (stage arguments, text the one-line error must contain)
BAD_ARGUMENTS = [
    (["sample", "--method", "teacher", "--steps", "0"], "--steps 0: teacher-0 cannot be sampled: a step count"),
    (["sample", "--method", "dcm", "--steps", "-2"], "--steps -2"),
    (["sample", "--method", "dcm", "--steps", "3"], "--steps 3: dcm-3 cannot be sampled"),
    (["sample", "--method", "pcm", "--steps", "12"], "--steps 12: pcm-12 cannot be sampled: PCM's 12 phases"),
    (["pcm"], "pcm.phases is 'steps' (one network per sampling step count): give --phases P"),
    (["pcm", "--phases", "0"], "--phases 0: a phase count must lie in 1..10"),
    (["pcm", "--phases", "11"], "--phases 11: a phase count must lie in 1..10"),
    (["evaluate", "--method", "sd3", "--steps", "4"], "unknown method 'sd3'; known: teacher, lcm, pcm"),
    (["sample", "--method", "seme+lcm", "--steps", "4"], "mixed method 'seme+lcm'"),
    (["seme", "--variant", "nope"], "unknown variant 'nope'"),
    (["sample", "--method", "pcm", "--steps", "4", "--kappa", "4"], "--kappa 4 applies to methods made of SemE"),
    (["sample", "--method", "dcm", "--steps", "4", "--kappa", "12"], "--kappa 12: schedule.kappa=12"),
    (["lcm", "--train-seed", "7"], "--train-seed 7: not a training seed of this run: seed=0, extra_train_seeds=[1]"),
    (["seme", "--kappa", "4", "--train-seed", "1"], "--train-seed 1 with --kappa 4: the kappa sweep is trained at"),
    (["sample", "--method", "teacher", "--steps", "4", "--train-seed", "1"],
     "--train-seed 1 applies to trained students, not 'teacher'"),
    (["dataset", "--set", "sampling.prompts=['a"], "override sampling.prompts: the value is not valid YAML (line 1"),
    (["dataset", "--set", "sampling"], "override 'sampling' must look like key.sub=value"),
    (["dataset", "--set", "results_dir=/proc/dcm"], "results_dir=/proc/dcm: cannot write there"),
]

# (config file content, text the one-line error must contain; {path} is the file)
BAD_FILES = [
    (b"name: x\xff\n", "config {path} is not UTF-8 text (byte 7"),
    (b"name: [unclosed\n", "config {path} is not valid YAML: line 2, column 1"),
    (b"- a\n- b\n", "config {path} must be a mapping at the top level"),
    (b"bogus_key: 1\n", "{path}: invalid value at '<top level>': Additional properties are not allowed ('bogus_key'"),
    (None, "config file not found: {path}"),  # missing
    ("directory", "config file not found: {path}"),
]

# (target under the smoke run, text the one-line error must contain)
BAD_TARGETS = [
    ("samples/sd3-4", "a target asks for method=sd3, steps=4: unknown method 'sd3'; known: teacher, lcm, pcm"),
    ("eval/dcm-3", "a target asks for method=dcm, steps=3: --steps 3: dcm-3 cannot be sampled"),
    ("samples/pcm-12", "pcm-12 cannot be sampled"),
    ("pcm/11", "a target asks for baseline=pcm, phases=11: --phases 11: a phase count must lie in 1..10"),
    ("dete/nope", "a target asks for variant=nope: unknown variant 'nope'"),
    ("kappa/4/samples/pcm-4", "--kappa 4 applies to methods made of SemE and DetE only"),
    ("kappa/99/samples/dcm-4", "kappa 99: schedule.kappa=99 is outside the teacher grid"),
    ("vbench/seme+lcm-4", "mixed method 'seme+lcm'"),
    ("seed/7/lcm", "a target asks for seed=7, baseline=lcm: seed 7: not a training seed of this run"),
    ("seed/1/samples/teacher-4", "--train-seed 1 applies to trained students, not 'teacher'"),
]


def _one_line_error(code, stderr, needle, expected_code):
    assert code == expected_code, stderr[-2000:]
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and needle in errors[0], stderr


@pytest.mark.parametrize("overrides,needle", BAD_CONFIGS)
def test_bad_config_is_refused_by_the_cli(tmp_path, capsys, overrides, needle):
    sets = [a for o in overrides for a in ("--set", o)]
    proc = dcm_in_process("dataset", *sets, results=tmp_path / "results", capsys=capsys)
    _one_line_error(proc.returncode, proc.stderr, needle, 2)
    assert not (tmp_path / "results").exists()  # nothing written, not even a tracking store


@pytest.mark.parametrize("overrides,needle", BAD_CONFIGS)
def test_bad_config_is_refused_by_snakemake(tmp_path, overrides, needle):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(apply_overrides(yaml.safe_load(SMOKE.read_text()), overrides)))
    proc = subprocess.run([SNAKEMAKE, "-n", "--configfile", str(config), "--config", f"results_dir={tmp_path / 'r'}"],
                          cwd=REPO, capture_output=True, text=True)
    _one_line_error(proc.returncode, proc.stderr, needle, 1)
    assert str(config) in proc.stderr and not (tmp_path / "r").exists()


@pytest.mark.parametrize("args,needle", BAD_ARGUMENTS)
def test_bad_arguments_are_refused_before_any_work(tmp_path, capsys, args, needle):
    proc = dcm_in_process(*args, results=tmp_path / "results", capsys=capsys)
    _one_line_error(proc.returncode, proc.stderr, needle, 2)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("content,needle", BAD_FILES)
def test_bad_config_file_is_refused_naming_it(tmp_path, capsys, content, needle):
    path = tmp_path / "bad.yaml"
    if content == "directory":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    proc = dcm_in_process("dataset", results=tmp_path / "results", capsys=capsys, config=path)
    _one_line_error(proc.returncode, proc.stderr, needle.format(path=path), 2)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("target,needle", BAD_TARGETS)
def test_bad_snakemake_target_is_refused_naming_what_exists(tmp_path, target, needle):
    proc = subprocess.run([SNAKEMAKE, "-n", "--configfile", str(SMOKE), "--config", f"results_dir={tmp_path}", "--",
                           str(tmp_path / "smoke" / target)], cwd=REPO, capture_output=True, text=True)
    _one_line_error(proc.returncode, proc.stderr, needle, 1)
    assert not (tmp_path / "smoke").exists()


def test_the_cli_front_door_refuses_in_a_subprocess_too(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dcm", "sample", "--method", "sd3", "--steps", "4", "--config",
                           str(SMOKE), "--set", f"results_dir={tmp_path}"], cwd=REPO, capture_output=True, text=True)
    _one_line_error(proc.returncode, proc.stderr, "unknown method 'sd3'", 2)
    assert not list(tmp_path.iterdir())


def test_a_truncated_trajectory_shard_stops_the_dry_run(tmp_path):
    cache = tmp_path / "smoke" / "trajectories"
    cache.mkdir(parents=True)
    (cache / "shard-00000.safetensors").write_bytes(b"abc")
    (cache / "manifest.json").write_text('{"shards": [{"file": "shard-00000.safetensors", "bytes": 10, "count": 1}]}')
    base = [SNAKEMAKE, "-n", "--configfile", str(SMOKE), "--config", f"results_dir={tmp_path}"]
    proc = subprocess.run(base, cwd=REPO, capture_output=True, text=True)
    _one_line_error(proc.returncode, proc.stderr, f"trajectory shard {cache / 'shard-00000.safetensors'} has 3 "
                                                  "bytes, the manifest records 10", 1)
    forced = subprocess.run([*base, "--forcerun", "trajectories"], cwd=REPO, capture_output=True, text=True)
    assert forced.returncode == 0, forced.stderr[-2000:]  # the way out the message names

"""Load a YAML run config, fill defaults and validate it against dcm/schema.yaml, then check its maths."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import jsonschema
import yaml

from dcm.errors import DCMError
from dcm.io import yaml_problem

SCHEMA_PATH = Path(__file__).with_name("schema.yaml")


def _with_defaults(validator_class):
    """A validator that writes each property's `default` into the instance before checking it."""
    check_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def load_schema() -> dict:
    """The JSON schema shared by the CLI and the Snakefile."""
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _parse_override(text: str) -> tuple[list[str], object]:
    if "=" not in text:
        raise DCMError(f"override {text!r} must look like key.sub=value")
    key, value = text.split("=", 1)
    try:
        return key.split("."), yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise DCMError(f"override {key}: the value is not valid YAML ({yaml_problem(err)})") from err


def apply_overrides(cfg: dict, overrides: list[str]) -> dict:
    """Set dotted keys from `key.sub=value` strings (values parsed as YAML)."""
    cfg = copy.deepcopy(cfg)
    for text in overrides:
        keys, value = _parse_override(text)
        node = cfg
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise DCMError(f"override {text!r}: {key} is not a mapping")
        node[keys[-1]] = value
    return cfg


def validate(cfg: dict, source: str = "config") -> dict:
    """Fill defaults, check types and ranges, then the cross-key rules; errors name the key."""
    cfg = copy.deepcopy(cfg)
    errors = sorted(_Validator(load_schema()).iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
        raise DCMError(f"{source}: invalid value at '{key}': {err.message}")
    check_consistency(cfg, source)
    return cfg


def check_consistency(cfg: dict, source: str) -> None:
    """Rules across keys that a JSON schema cannot state, with the phase arithmetic the sampler uses: every
    sample set, kappa point and table the workflow will build is checked here; each error names the key."""
    from dcm import methods
    from dcm.schedule import PhaseSchedule

    phases = PhaseSchedule.from_config(cfg)
    if not 0 < phases.kappa < phases.num_steps:
        raise DCMError(f"{source}: schedule.kappa={phases.kappa} is outside the teacher grid: it must lie in "
                       f"1..{phases.num_steps - 1} (schedule.num_steps={phases.num_steps})")
    if problem := phases.expert_phases_problem():
        raise DCMError(f"{source}: {problem}")
    teacher_steps = cfg["sampling"]["teacher_steps"]
    if teacher_steps > phases.num_steps:
        raise DCMError(f"{source}: sampling.teacher_steps={teacher_steps} exceeds schedule.num_steps="
                       f"{phases.num_steps}: the teacher samples on its own grid")
    for key, value, allowed in (("tables.ablation_steps", cfg["tables"]["ablation_steps"], cfg["sampling"]["steps"]),
                                ("tables.method", cfg["tables"]["method"], list(cfg["variants"]))):
        if value not in allowed:
            raise DCMError(f"{source}: {key}={value!r} is not one of {allowed} (sampling.steps / variants)")
    if cfg["kappa_sweep"]["values"] and not cfg["variants"][cfg["tables"]["method"]]["decouple"]:
        raise DCMError(f"{source}: tables.method={cfg['tables']['method']!r} names a variant without experts "
                       "(decouple: false), but kappa_sweep.values retrains SemE and DetE at each kappa")
    if cfg["seed"] in cfg["extra_train_seeds"]:
        raise DCMError(f"{source}: extra_train_seeds={cfg['extra_train_seeds']} contains the run's own "
                       f"seed={cfg['seed']}: each training seed is trained once")
    methods.check_planned_sets(cfg, source)
    _check_data(cfg, source)


def prompt_count(cfg: dict) -> int:
    """How many prompts the dataset stage splits: every procedural combination, or those of data.prompt_file."""
    from dcm.backbone_specs import backbone_spec

    if backbone_spec(cfg).prompts == "procedural":
        from dcm.data.procedural import all_factors

        return len(all_factors())
    from dcm.data.prompts import read_prompt_file

    return len(read_prompt_file(cfg["data"]["prompt_file"]))


def trajectory_count(cfg: dict) -> int:
    """How many (prompt, seed) trajectories the cache holds: training prompts x trajectories.seeds_per_prompt."""
    return (prompt_count(cfg) - cfg["data"]["holdout_prompts"]) * cfg["trajectories"]["seeds_per_prompt"]


def _check_data(cfg: dict, source: str) -> None:
    """The backbone's prompt source exists and leaves prompts to train on; procedural objects fit the frame; the
    trajectory cache has a shard for every generation job."""
    from dcm.backbone_specs import backbone_spec

    spec, data, shape = backbone_spec(cfg), cfg["data"], cfg["backbone"]
    if spec.pretrained:
        for key in ("backbone.pretrained", "data.prompt_file"):
            section, name = key.split(".")
            if name not in cfg[section]:
                raise DCMError(f"{source}: {key} is required for backbone.name={cfg['backbone']['name']} "
                               "(a path: see config/wan2.1-t2v-1.3b.yaml)")
    if spec.prompts == "procedural":
        from dcm.data.procedural import path_length

        if data.get("prompt_file"):
            raise DCMError(f"{source}: data.prompt_file={data['prompt_file']} is not read by backbone.name="
                           f"{cfg['backbone']['name']}, whose prompts are the procedural clips' captions; remove it")
        needed = path_length(shape["frames"], data["object_size"], data["speed"])
        if needed > min(shape["height"], shape["width"]):
            raise DCMError(f"{source}: data.object_size={data['object_size']} moving data.speed={data['speed']} px "
                           f"for backbone.frames={shape['frames']} frames needs {needed:g} px, more than the "
                           f"{shape['height']}x{shape['width']} frame (backbone.height, backbone.width)")
    prompts = prompt_count(cfg)
    if data["holdout_prompts"] >= prompts:
        raise DCMError(f"{source}: data.holdout_prompts={data['holdout_prompts']} holds out every one of the "
                       f"{prompts} prompts: at least one must be left to train on")
    trajectories = cfg["trajectories"]
    shards = -(-trajectory_count(cfg) // trajectories["shard_size"])
    if trajectories["mode"] == "cached" and trajectories["jobs"] > shards:
        raise DCMError(f"{source}: trajectories.jobs={trajectories['jobs']} exceeds the {shards} shards of the "
                       f"trajectory cache ({trajectory_count(cfg)} trajectories in shards of trajectories.shard_size="
                       f"{trajectories['shard_size']}): a job would have none to generate")


def at_kappa(cfg: dict, kappa: int, source: str = "--kappa") -> dict:
    """The config of one point of the kappa sweep (Fig. 10, right): schedule.kappa and kappa_sweep.point set to
    `kappa`, so that the kappa-dependent outputs go under <run>/kappa/<kappa>/."""
    cfg = copy.deepcopy(cfg)
    cfg["schedule"]["kappa"] = cfg["kappa_sweep"]["point"] = kappa
    check_consistency(cfg, f"{source} {kappa}")
    return cfg


def train_seeds(cfg: dict) -> list[int]:
    """The students' training seeds: the run's own `seed`, then extra_train_seeds."""
    return [cfg["seed"], *cfg["extra_train_seeds"]]


def train_seed(cfg: dict) -> int:
    """The seed this process trains (or samples, or scores) the students of: its --train-seed, else `seed`."""
    point = cfg["train_seed_point"]
    return cfg["seed"] if point is None else point


def at_train_seed(cfg: dict, seed: int, source: str = "--train-seed") -> dict:
    """The config of one more training seed of the students (train_seed_point set, outputs under
    <run>/seed/<seed>/); the run's own `seed` is the run itself."""
    if seed not in train_seeds(cfg):
        raise DCMError(f"{source} {seed}: not a training seed of this run: seed={cfg['seed']}, "
                       f"extra_train_seeds={cfg['extra_train_seeds']}")
    if seed != cfg["seed"] and cfg["kappa_sweep"]["point"] is not None:
        raise DCMError(f"{source} {seed} with --kappa {cfg['kappa_sweep']['point']}: the kappa sweep is trained "
                       f"at the run's own seed={cfg['seed']} only")
    cfg = copy.deepcopy(cfg)
    cfg["train_seed_point"] = None if seed == cfg["seed"] else seed
    return cfg


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise DCMError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise DCMError(f"config {path} is not UTF-8 text (byte {err.start}: {err.reason})") from None
    except yaml.YAMLError as err:
        raise DCMError(f"config {path} is not valid YAML: {yaml_problem(err)}") from None
    if not isinstance(raw, dict):
        raise DCMError(f"config {path} must be a mapping at the top level")
    return raw


def _deep_update(base: dict, update: dict) -> dict:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def load_config(paths: str | Path | list, overrides: list[str] | None = None) -> dict:
    """Read one or more config files (later ones deep-update earlier ones, as Snakemake merges its
    --configfile list), apply `key=value` overrides, fill defaults and validate."""
    paths = [Path(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
    raw: dict = {}
    for path in paths:
        _deep_update(raw, _read_yaml(path))
    return validate(apply_overrides(raw, overrides or []), source=" + ".join(map(str, paths)))


def config_hash(cfg: dict, *sections: str) -> str:
    """Short stable hash of the named top-level sections (all of them when none is named)."""
    part = {k: cfg[k] for k in sections} if sections else cfg
    return hashlib.sha256(json.dumps(part, sort_keys=True).encode()).hexdigest()[:16]

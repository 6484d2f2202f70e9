"""Running the real command line from tests."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "config" / "smoke.yaml"


def dcm(*args: str, results: Path, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """`python -m dcm ARGS --config config/smoke.yaml --set results_dir=RESULTS` as a subprocess."""
    command = [sys.executable, "-m", "dcm", *args, "--config", str(SMOKE), "--set", f"results_dir={results}"]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{command} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def dcm_in_process(stage: str, *args: str, results: Path, capsys, config: Path = SMOKE) -> subprocess.CompletedProcess:
    """`dcm` above, through dcm.cli.main in this process: for refusals, which need the exit status and the
    message, not a fresh interpreter (~7 s of imports each). `args` come last, so their results_dir wins."""
    from dcm.cli import main

    command = [stage, "--config", str(config), "--set", f"results_dir={results}", *args]
    code = main(command)
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(command, code, captured.out, captured.err)


def snakemake(*args: str, timeout: int = 1800, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run snakemake from the repo root under a hard kill timeout (it ignores SIGTERM while waiting)."""
    binary = Path(sys.executable).with_name("snakemake")
    return subprocess.run(["timeout", "-s", "KILL", str(timeout), str(binary), *args], cwd=REPO,
                          capture_output=True, text=True, env=env)


def project_sampler(cfg: dict, method: str, steps: int, backbone):
    """The sampler the `sample` stage builds for `method` at `steps` steps: sampler(noise, cond, seeds)."""
    from dcm import layout, methods
    from dcm.method_samplers import SamplerRequest, build_sampler
    from dcm.schedule import PhaseSchedule

    return build_sampler(SamplerRequest(cfg, methods.check_request(cfg, method, steps), steps,
                                        PhaseSchedule.from_config(cfg), backbone, layout.run_dir(cfg),
                                        layout.own_point(cfg)))


def write_cache(directory: Path, latents, cond, prompts: list[str], shard_size: int, config_hash: str = "test") -> None:
    """A trajectory cache on disk from in-memory latents (K, N+1, ...) and cond (K, L, D), in shards."""
    from dcm.trajectories import write_manifest, write_shard

    records = [write_shard(directory, i, latents[a:a + shard_size], cond[a:a + shard_size],
                           prompts[a:a + shard_size], config_hash)
               for i, a in enumerate(range(0, len(prompts), shard_size))]
    write_manifest(directory, records, config_hash=config_hash, num_steps=latents.shape[1] - 1,
                   latent_shape=list(latents.shape[2:]), dtype="float16")

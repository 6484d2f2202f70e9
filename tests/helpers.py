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


def snakemake(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run snakemake from the repo root under a hard kill timeout (it ignores SIGTERM while waiting)."""
    binary = Path(sys.executable).with_name("snakemake")
    return subprocess.run(["timeout", "-s", "KILL", str(timeout), str(binary), *args], cwd=REPO,
                          capture_output=True, text=True)

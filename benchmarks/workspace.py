"""A throwaway git repository holding a copy of this working tree, for the DVC tests and benchmarks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` and return its stdout (an error with stderr on failure)."""
    proc = subprocess.run(["git", "-c", "user.name=dcm-test", "-c", "user.email=dcm-test@localhost", *args],
                          cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {repo}:\n{proc.stderr}")
    return proc.stdout


def copy_working_tree(destination: Path) -> Path:
    """Copy the files git would see here (tracked and untracked, not ignored) to `destination`, link the
    virtual environment in as `.venv`, and commit everything in a fresh git repository there."""
    listed = git(REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (destination / ".venv").symlink_to(VENV)
    git(destination, "init", "-q")
    (destination / ".git" / "info" / "exclude").write_text(".venv\n")  # `.venv/` in .gitignore skips only directories
    commit(destination, "copy of the working tree")
    return destination


def commit(repo: Path, message: str) -> None:
    """Stage everything and commit it."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)

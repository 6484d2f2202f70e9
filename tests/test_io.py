"""File writes: atomic, and with the process umask whatever the writer."""

import os
import stat

import pytest
import torch

from dcm.io import atomic_path, save_tensors, write_json


@pytest.fixture
def umask():
    """The process umask (dcm.io reads it once, at import)."""
    current = os.umask(0o022)
    os.umask(current)
    return current


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_safetensors_and_json_get_the_same_mode_from_the_process_umask(tmp_path, umask):
    save_tensors(tmp_path / "w.safetensors", {"x": torch.zeros(2)})
    write_json(tmp_path / "m.json", {"a": 1})
    expected = 0o666 & ~umask
    assert _mode(tmp_path / "w.safetensors") == expected == _mode(tmp_path / "m.json")
    assert expected & stat.S_IRGRP  # readable by the project group under the usual umasks (022, 002)


def test_an_atomic_directory_gets_the_umask_mode(tmp_path, umask):
    with atomic_path(tmp_path / "d", is_dir=True) as tmp:
        (tmp / "f").write_text("x")
    assert _mode(tmp_path / "d") == 0o777 & ~umask


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "f.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []

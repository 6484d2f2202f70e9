"""`python -m dcm schedule`: the grid, guidance and every method's few-step schedule of the real configs, from the
config alone (no pretrained weights, no output, no tracked run)."""

import json
from pathlib import Path

import pytest

from dcm.cli import main
from dcm.config import load_config
from dcm.grids import grid

REPO = Path(__file__).resolve().parents[1]


def _schedule(capsys, config: str, *flags: str) -> str:
    assert main(["schedule", "--config", str(REPO / "config" / config), *flags]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("config, kappa, switch_t, guidance", [
    ("wan2.1-t2v-1.3b.yaml", 35, 875.0, {"kind": "cfg", "scale": 5.0, "negative_prompt": ""}),
    ("cogvideox-2b.yaml", 37, 739.0, {"kind": "cfg", "scale": 6.0, "negative_prompt": ""}),
    ("hunyuanvideo.yaml", 38, None, {"kind": "embedded", "scale": 6.0, "negative_prompt": ""})])
def test_schedule_json_of_the_real_configs(capsys, tmp_path, config, kappa, switch_t, guidance):
    report = json.loads(_schedule(capsys, config, "--json", "--set", f"results_dir={tmp_path}",
                                  "--set", "tracking.enabled=false"))
    sigmas, timesteps = grid(load_config(REPO / "config" / config, []))
    assert report["grid"] == {"sigmas": sigmas.tolist(), "timesteps": timesteps.tolist()}
    assert len(report["grid"]["sigmas"]) == 51 and report["kappa"] == kappa
    assert report["guidance"] == guidance
    teacher = report["methods"]["teacher"]["50"]
    assert teacher["schedule"] == list(range(50, -1, -1)) and teacher["guidance"] == guidance
    dcm4 = report["methods"]["dcm"]["4"]
    half = round(kappa / 2)  # two steps in [0, kappa]: kappa, then its middle (round half to even, as torch)
    assert dcm4["edges"] == [50, kappa, 0] and dcm4["schedule"][2:] == [kappa, half, 0]
    assert dcm4["experts"] == ["semantic", "semantic", "detail", "detail"] and dcm4["guidance"]["kind"] == "none"
    assert dcm4["switch"]["index"] == kappa and dcm4["switch"]["timestep"] == timesteps[kappa]
    if switch_t is not None:
        assert dcm4["switch"]["timestep"] == switch_t
    assert report["methods"]["pcm"]["4"]["schedule"] == [50, 38, 25, 12, 0]  # 4 phases, one step each
    assert "switch" not in report["methods"]["vcm"]["4"]  # one network on both phases
    assert set(report["methods"]) == {"teacher", "lcm", "pcm", "vcm", "od", "od_pe", "od_pe_tc", "od_pe_gf", "dcm"}
    assert set(report["methods"]["dcm"]) == {"4", "8"} and set(report["methods"]["teacher"]) == {"4", "8", "50"}
    assert list(tmp_path.iterdir()) == []  # a report: no outputs


def test_schedule_text(capsys):
    text = _schedule(capsys, "hunyuanvideo.yaml", "--set", "tracking.enabled=false")
    assert "shift 17, N = 50, kappa = 38; teacher guidance embedded 6" in text
    assert "dcm-4: edges [50, 38, 0], indices [50, 44, 38, 19, 0], switch at index 38" in text  # the authors' grid
    assert "teacher-50: edges [50, 0], every grid index 50..0, guidance embedded 6" in text
    assert "   1   0.257576    257.576" in text  # shift 17 applied once

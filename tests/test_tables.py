"""Tables 1 and 3 and the kappa sweep from result files."""

import itertools

import pandas as pd
import pytest

from dcm.io import write_json
from dcm.methods import seed_sets, table1_sets
from dcm.report.tables import PAIRED, kappa_sweep_rows, paired_columns, table1_rows, table3_rows, to_markdown


def _scores(totals, per_video=None):
    scores = {"per_seed": [{"seed": k, "total": t, "quality": t + 0.1, "semantic": t - 0.1}
                           for k, t in enumerate(totals)], "frechet_to_real": 1.5}
    return scores if per_video is None else {**scores, "per_video_total": per_video}


def _write_set(root, name, totals, per_video=None):
    write_json(root / "eval" / name / "scores.json", _scores(totals, per_video))


def _latency(path, sets):
    write_json(path, {"per_video": {name: {"median_s": t, "seconds": [t, t]} for name in sets
                                    for t in [5.0 if name == "teacher-50" else 0.5]}})


def test_table1_rows_compare_every_method_with_the_teacher(tmp_path):
    _write_set(tmp_path, "teacher-50", [0.9, 0.9])
    for (method, base), steps in itertools.product([("teacher", 0.5), ("lcm", 0.6), ("pcm", 0.7), ("dcm", 0.8)], [4]):
        _write_set(tmp_path, f"{method}-{steps}", [base, base + 0.02], [base, base + 0.01, base + 0.02, base + 0.03])
    sets = table1_sets({"sampling": {"teacher_steps": 50, "steps": [4]}, "tables": {"method": "dcm"}})
    assert sets == ["teacher-50", "teacher-4", "lcm-4", "pcm-4", "dcm-4"]
    _latency(tmp_path / "latency.json", sets)
    phases = {"teacher-50": 1, "teacher-4": 1, "lcm-4": 1, "pcm-4": 4, "dcm-4": 2}
    rows = table1_rows([tmp_path / "eval"], tmp_path / "latency.json", sets, "dcm", phases,
                       {"lcm-4", "pcm-4", "dcm-4"}).to_dict("records")
    assert [(r["method"], r["steps"], r["phases"]) for r in rows] == [("teacher", 50, 1), ("teacher", 4, 1),
                                                                     ("lcm", 4, 1), ("pcm", 4, 4), ("dcm", 4, 2)]
    dcm = rows[-1]
    assert dcm["speedup"] == pytest.approx(10.0)
    assert dcm["total"] == pytest.approx(81.0) and dcm["quality"] == pytest.approx(91.0)
    assert dcm["total_std"] == pytest.approx(2 ** 0.5)  # values 80 and 82
    assert (dcm["seeds"], dcm["train_seeds"], dcm["frechet_to_real"]) == (2, 1, 1.5)
    # DCM minus each row at its step count, video by video: 0.8 - 0.6 = 20 points for LCM on all 4 videos
    lcm = rows[2]
    assert (lcm["paired_diff"], lcm["paired_low"], lcm["paired_high"]) == pytest.approx((20.0, 20.0, 20.0))
    assert lcm["paired_p"] == pytest.approx(2 / 16)
    assert rows[1]["paired_diff"] == pytest.approx(30.0)  # the teacher's own 4-step solve
    assert pd.isna(dcm["paired_diff"]) and pd.isna(rows[0]["paired_diff"])  # itself; no DCM at 50 steps
    assert "| lcm | 4 | 1 | 0.5 | 10 | 61.00 ± 1.41 |" in to_markdown(rows)
    assert to_markdown(rows).splitlines()[0].endswith(
        "| train_seeds | seeds | frechet_to_real | paired_diff | paired_p | paired_seeds_positive |")
    assert lcm["paired_seeds_positive"] is None  # one training seed: nothing to count
    assert "+20.00 [+20.00, +20.00] | 0.125 |" in to_markdown(rows)


def test_rows_trained_at_several_seeds_average_over_them_and_pair_seed_with_seed(tmp_path):
    """Two training seeds: DCM's Totals per sampling seed 80, 82 (seed 0) and 84, 86 (seed 1); each training's mean
    (81, 85) is one value of the row; LCM's videos are paired with DCM's of the same training seed, the teacher's
    (trained once) with DCM's of every seed."""
    seeds = [tmp_path / "run", tmp_path / "run" / "seed" / "1"]
    _write_set(seeds[0], "teacher-50", [0.9])
    _write_set(seeds[0], "teacher-4", [0.5], [0.5, 0.5])
    for root, dcm, lcm in zip(seeds, ([0.80, 0.82], [0.84, 0.86]), ([0.6, 0.6], [0.7, 0.7])):
        _write_set(root, "dcm-4", dcm, [0.8, 0.8])
        _write_set(root, "lcm-4", lcm, lcm)
    sets = ["teacher-50", "teacher-4", "lcm-4", "dcm-4"]
    _latency(tmp_path / "latency.json", sets)
    rows = table1_rows([s / "eval" for s in seeds], tmp_path / "latency.json", sets, "dcm",
                       dict.fromkeys(sets, 1), {"lcm-4", "dcm-4"}).to_dict("records")
    teacher, lcm, dcm = rows[1], rows[2], rows[3]
    assert (dcm["train_seeds"], dcm["seeds"]) == (2, 2) and teacher["train_seeds"] == 1
    assert dcm["total"] == pytest.approx(83.0)
    assert dcm["total_std"] == pytest.approx(8 ** 0.5)  # training means 81 and 85
    assert teacher["total_std"] == 0.0  # one training, one sampling seed
    assert lcm["paired_diff"] == pytest.approx(15.0)  # (20 + 20 + 10 + 10) / 4
    assert teacher["paired_diff"] == pytest.approx(30.0)  # its 2 videos against each seed's: 4 pairs of 30
    assert (lcm["paired_seeds_positive"], teacher["paired_seeds_positive"]) == ("2/2", "2/2")


def test_paired_columns_count_the_training_seeds_whose_difference_is_positive():
    """Three training seeds, per-video differences (+10, +10), (-20, 0), (+10, +30): pooled mean 40/6 points, seed
    means +10, -10, +20, so 2 of 3 seeds favour the row."""
    def scores(*totals):
        return {"per_video_total": list(totals)}

    row = [scores(0.6, 0.6), scores(0.3, 0.5), scores(0.6, 0.8)]
    baseline = [scores(0.5, 0.5), scores(0.5, 0.5), scores(0.5, 0.5)]
    columns = paired_columns(row, baseline)
    assert columns["paired_diff"] == pytest.approx(40 / 6)
    assert columns["paired_seeds_positive"] == "2/3"
    assert paired_columns(row, [scores(0.5, 0.5)])["paired_seeds_positive"] == "2/3"  # a row trained once, repeated
    assert paired_columns(row, None) == dict.fromkeys(PAIRED)


def test_table1_refuses_a_latency_file_without_one_of_its_sets(tmp_path):
    from dcm.errors import DCMError

    _write_set(tmp_path, "teacher-50", [0.9])
    _write_set(tmp_path, "dcm-4", [0.8])
    write_json(tmp_path / "latency.json", {"per_video": {"teacher-50": {"median_s": 1.0}}})
    with pytest.raises(DCMError, match=r"has no latency for \['dcm-4'\]: rerun the 'latency' stage"):
        table1_rows([tmp_path / "eval"], tmp_path / "latency.json", ["teacher-50", "dcm-4"], "dcm",
                    {"teacher-50": 1, "dcm-4": 2}, {"dcm-4"})


def test_table3_rows_carry_the_ablation_switches(tmp_path):
    variants = {"vcm": dict(decouple=False, parameter_efficient=False, temporal_coherence=False, gan=False),
                "dcm": dict(decouple=True, parameter_efficient=True, temporal_coherence=True, gan=True)}
    _write_set(tmp_path, "vcm-4", [0.7], [0.7, 0.7, 0.8])
    _write_set(tmp_path, "dcm-4", [0.8], [0.8, 0.7, 0.9])
    frame = table3_rows([tmp_path / "eval"], variants, 4, {"dcm": {"extra": 25, "backbone": 250}}, {"vcm": 2, "dcm": 2})
    rows = frame.to_dict("records")
    assert [r["row"] for r in rows] == ["(1)", "(2)"]
    assert [(r["extra_params"], r["extra_params_pct"]) for r in rows] == [(0, 0.0), (25, 10.0)]  # vcm adds none
    # each row against the one above: differences 10, 0, 10 points; the two 10s share a sign in 4 of 8 patterns
    assert pd.isna(rows[0]["paired_diff"])
    assert rows[1]["paired_diff"] == pytest.approx(20 / 3) and rows[1]["paired_p"] == pytest.approx(0.5)
    assert 0.0 <= rows[1]["paired_low"] <= rows[1]["paired_high"] <= 10.0
    assert (rows[0]["OD"], rows[1]["OD"], rows[1]["GF"]) == (False, True, True)
    markdown = to_markdown(rows)
    assert "| (2) | dcm | ✓ | ✓ | ✓ | ✓ | 4 | 2 | 80.00 ± 0.00 |" in markdown
    assert "total_std" not in markdown
    frame.to_csv(tmp_path / "t.csv", index=False)
    header = (tmp_path / "t.csv").read_text().splitlines()[0]
    assert header.startswith("row,variant,OD,PE,TC,GF,steps,phases,total,total_std")


def test_missing_scores_name_the_file(tmp_path):
    from dcm.errors import DCMError

    with pytest.raises(DCMError, match="scores.json"):
        table3_rows([tmp_path / "eval"], {"vcm": dict(decouple=False, parameter_efficient=False,
                                                    temporal_coherence=False, gan=False)}, 4, {}, {"vcm": 2})


def test_kappa_sweep_rows_read_each_points_scores_in_kappa_order(tmp_path):
    for kappa, totals in ((30, [0.70, 0.74]), (20, [0.60, 0.60])):
        write_json(tmp_path / str(kappa) / "dcm-4" / "scores.json", _scores(totals))
    rows = kappa_sweep_rows({30: tmp_path / "30", 20: tmp_path / "20"}, "dcm-4", configured=30).to_dict("records")
    assert [(r["kappa"], r["configured"]) for r in rows] == [(20, False), (30, True)]
    assert rows[0]["total"] == pytest.approx(60.0) and rows[0]["total_std"] == 0.0
    assert rows[1]["total"] == pytest.approx(72.0) and rows[1]["semantic"] == pytest.approx(62.0)
    assert rows[1]["total_std"] == pytest.approx(8 ** 0.5)  # values 70 and 74
    assert "| 30 | ✓ | 72.00 ± 2.83 |" in to_markdown(rows)


def test_the_tables_stage_writes_each_rows_phase_count_to_csv_json_and_markdown(tmp_path):
    from dcm import layout
    from dcm.config import load_config
    from dcm.io import read_json
    from dcm.stages import tables
    from tests.helpers import SMOKE

    cfg = load_config(SMOKE, [f"results_dir={tmp_path}", "tracking.enabled=false"])
    run = layout.run_dir(cfg)
    sets = table1_sets(cfg)
    for name in {*sets, *(f"{v}-4" for v in cfg["variants"])}:
        _write_set(run, name, [0.5, 0.6])
    for name in seed_sets(cfg):  # smoke's second training seed
        _write_set(layout.seed_dir(run, 1), name, [0.7, 0.8])
    write_json(layout.latency_dir(run) / layout.LATENCY, {"per_video": {n: {"median_s": 1.0, "seconds": [1.0]}
                                                                        for n in sets}})
    for variant in ("od", "dcm"):
        write_json(layout.dete_dir(run, variant) / layout.PARAMETERS, {"extra": 1, "backbone": 10})
    expected = {"1": [1, 1, 1, 4, 2], "3": [2, 2, 2]}  # teacher-10, teacher-4, lcm-4, pcm-4, dcm-4; vcm, od, dcm
    for table, phases in expected.items():
        tables.run(cfg, table)
        out = layout.table_dir(run, table)
        assert pd.read_csv(out / f"{out.name}.csv")["phases"].tolist() == phases
        assert [r["phases"] for r in read_json(out / f"{out.name}.json")["rows"]] == phases
        markdown = (out / f"{out.name}.md").read_text().splitlines()
        column = markdown[0].split(" | ").index("phases")
        assert [int(line.split(" | ")[column]) for line in markdown[2:]] == phases
    table1 = pd.read_csv(layout.table_dir(run, "1") / "table1.csv")
    assert table1["train_seeds"].tolist() == [1, 1, 2, 2, 2]  # the teacher's rows are trained once
    assert table1["total"].tolist()[2] == pytest.approx(65.0)  # training means 55 (seed 0) and 75 (seed 1)

"""User study (Table 2) without a browser: blinding of the sheets, seeded and balanced left/right, the key, the
vote count against hand-worked shares and Wilson bounds, the stages, and the errors."""

import csv
from collections import Counter
from pathlib import Path

import pytest
import torch

from dcm.config import load_config
from dcm.errors import DCMError
from dcm.eval.userstudy.aggregate import aggregate, wilson_interval, write_table2
from dcm.eval.userstudy.sheets import make_sheets
from dcm.io import read_json, save_tensors, write_json
from dcm.stages import table2, userstudy
from tests.helpers import SMOKE

METHODS = ("dcm", "lcm", "pcm")
COMPARISONS = [("dcm", "lcm"), ("dcm", "pcm")]


def moving_square_videos(count: int, colour: tuple[int, int, int], frames: int = 4, size: int = 16) -> torch.Tensor:
    """uint8 (count, frames, size, size, 3): a 4 px square moving 3 px right per frame, row offset by video."""
    videos = torch.zeros(count, frames, size, size, 3, dtype=torch.uint8)
    for k in range(count):
        for t in range(frames):
            y, x = (2 * k) % (size - 4), 3 * t
            videos[k, t, y:y + 4, x:x + 4] = torch.tensor(colour, dtype=torch.uint8)
    return videos


def write_sample_sets(root: Path, prompts: list[str], sampling_seeds: list[int], steps: int = 4) -> dict[str, Path]:
    """samples/<method>-<steps>/ for every method under `root`, in the format of the `sample` stage."""
    colours = {"dcm": (250, 40, 40), "lcm": (40, 250, 40), "pcm": (40, 40, 250)}
    count = len(prompts) * len(sampling_seeds)
    sets = {}
    for method in METHODS:
        directory = root / "samples" / f"{method}-{steps}"
        videos = moving_square_videos(count, colours[method])
        save_tensors(directory / "samples.safetensors", {"latents": videos.float(), "videos": videos})
        write_json(directory / "meta.json", {
            "method": method, "steps": steps, "prompts": prompts,
            "seeds": [[s * 10_000 + k for k in range(len(prompts))] for s in sampling_seeds]})
        sets[method] = directory
    return sets


PROMPTS = ["a red circle moving left", "a blue square moving up"]


@pytest.fixture
def sample_sets(tmp_path):
    return write_sample_sets(tmp_path / "run", PROMPTS, sampling_seeds=[0, 1])  # 4 videos per method


def _sheets(tmp_path, sample_sets, name="study", **kwargs):
    options = {"raters": 3, "pairs_per_rater": None, "seed": 7} | kwargs
    out, key_path = tmp_path / name / "sheets", tmp_path / name / "key.json"
    key = make_sheets(sample_sets, COMPARISONS, out_dir=out, key_path=key_path, **options)
    return out, key_path, key


def _files(directory):
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_sheets_name_no_method_anywhere(tmp_path, sample_sets):
    out, key_path, key = _sheets(tmp_path, sample_sets)
    files = _files(out)
    assert sorted(n for n in files if n.endswith(".html")) == [f"rater-{r:02d}/index.html" for r in range(3)]
    assert sum(n.startswith("videos/") and n.endswith(".gif") for n in files) == 12  # 3 methods x 4 videos
    assert key_path.is_file() and not (out / "key.json").exists()
    secrets = [m.encode() for m in METHODS] + [str(p).encode() for p in sample_sets.values()]
    secrets += [entry["sha256"].encode() for entry in key["sample_sets"].values()]
    for name, content in files.items():
        for secret in secrets:
            assert secret not in name.lower().encode(), name
            assert secret not in content.lower(), (name, secret)
    page = files["rater-00/index.html"].decode()
    assert "http://" not in page and "https://" not in page and "<!--" not in page
    assert page.count('<section class="pair"') == 8  # 2 comparisons x 4 videos, all shown by default
    for pair_id, pair in key["raters"]["rater-00"].items():  # each side shows the key's file, same prompt
        assert f'src="../{pair["left_file"]}"' in page and f'src="../{pair["right_file"]}"' in page
        section = page.split(f'id="{pair_id}"')[1].split("</section>")[0]
        assert section.index(pair["left_file"]) < section.index(pair["right_file"])
        assert f"Prompt: {PROMPTS[pair['video'] % 2]}<" in section


def test_both_sides_of_a_pair_share_prompt_and_noise(tmp_path, sample_sets):
    _, _, key = _sheets(tmp_path, sample_sets)
    for pairs in key["raters"].values():
        for pair in pairs.values():
            k = pair["video"]
            assert {pair["left"], pair["right"]} == set(COMPARISONS[pair["comparison"]])
            assert pair["prompt"] == PROMPTS[k % 2] and pair["noise_seed"] == (k // 2) * 10_000 + k % 2
            assert pair["left_file"] != pair["right_file"]


def _left_methods(key):
    return [pair["left"] for pairs in key["raters"].values() for pair in pairs.values()]


def test_randomisation_is_seeded_and_balanced(tmp_path, sample_sets):
    out_a, key_a_path, key_a = _sheets(tmp_path, sample_sets, "a", raters=6, pairs_per_rater=5)
    out_b, key_b_path, _ = _sheets(tmp_path, sample_sets, "b", raters=6, pairs_per_rater=5)
    _, _, key_c = _sheets(tmp_path, sample_sets, "c", raters=6, pairs_per_rater=5, seed=8)
    assert _files(out_a) == _files(out_b) and key_a_path.read_bytes() == key_b_path.read_bytes()
    assert _left_methods(key_c) != _left_methods(key_a)
    shown = Counter()
    for pairs in key_a["raters"].values():
        assert len(pairs) == 5
        items = [(p["comparison"], p["video"]) for p in pairs.values()]
        assert len(set(items)) == 5  # no pair twice on one sheet
        shown.update(items)
        assert sum(p["left"] == "dcm" for p in pairs.values()) in (2, 3)  # 5 pairs: 2 or 3 with ours on the left
    assert sorted(shown.values()) == [3, 3, 4, 4, 4, 4, 4, 4]  # 30 showings of 8 pairs: floor/ceil of 3.75


def test_key_round_trips(tmp_path, sample_sets):
    _, key_path, key = _sheets(tmp_path, sample_sets)
    assert read_json(key_path) == key
    assert key["comparisons"] == [list(c) for c in COMPARISONS]
    assert set(key["sample_sets"]) == set(METHODS) and len(key["study"]) == 16


def test_wilson_interval_textbook_values():
    assert wilson_interval(0.5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0.0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(1.0, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)


HAND_KEY = {
    "study": "abc", "seed": 0, "questions": ["text_alignment", "motion_quality", "visual_quality"],
    "choices": ["left", "same", "right"], "comparisons": [["dcm", "lcm"], ["dcm", "pcm"]], "sample_sets": {},
    "raters": {r: {"pair-000": {"comparison": 0, "left": "dcm", "right": "lcm"},
                   "pair-001": {"comparison": 0, "left": "lcm", "right": "dcm"},
                   "pair-002": {"comparison": 1, "left": "pcm", "right": "dcm"}} for r in ("rater-00", "rater-01")}}


def _answers(path, rater, answers, study="abc"):
    write_json(path, {"study": study, "rater": rater,
                      "answers": [{"pair": p, "question": q, "choice": c} for p, q, c in answers]})
    return path


@pytest.fixture
def hand_study(tmp_path):
    key_path = tmp_path / "key.json"
    write_json(key_path, HAND_KEY)
    ta, mq = "text_alignment", "motion_quality"
    files = [_answers(tmp_path / "a0.json", "rater-00", [("pair-000", ta, "left"), ("pair-001", ta, "left"),
                                                         ("pair-002", ta, "right"), ("pair-000", mq, "right")]),
             _answers(tmp_path / "a1.json", "rater-01", [("pair-000", ta, "same"), ("pair-001", ta, "right"),
                                                         ("pair-002", ta, "left"), ("pair-002", mq, "same")])]
    return files, key_path


def test_aggregate_counts_by_hand(hand_study):
    rows = {(r["comparison"], r["question"]): r for r in aggregate(*hand_study)}
    assert len(rows) == 8  # 2 comparisons x (3 questions + overall)
    # dcm vs lcm, text alignment: dcm, lcm, same, dcm -> (2 + 1/2) / 4 = 0.625
    row = rows["dcm vs lcm", "text_alignment"]
    assert (row["answers"], row["prefer_method"], row["prefer_baseline"], row["same"]) == (4, 2, 1, 1)
    assert row["share"] == 0.625
    # Wilson, z = 1.959964: (0.625 + 0.480182) / 1.960365 = 0.563763 -+ 0.999795 * sqrt(0.0585938 + 0.0600228)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.219427, 0.908101), abs=1e-5)
    # dcm vs lcm, motion: one answer for lcm (right side of pair-000) -> 0 of 1
    row = rows["dcm vs lcm", "motion_quality"]
    assert (row["answers"], row["prefer_baseline"], row["share"]) == (1, 1, 0.0)
    # dcm vs pcm, text alignment: rater-00 right = dcm, rater-01 left = pcm -> 1 of 2
    assert rows["dcm vs pcm", "text_alignment"]["share"] == 0.5
    # dcm vs pcm overall: dcm, pcm, same -> 1.5 / 3; no visual-quality answers -> n/a
    assert rows["dcm vs pcm", "overall"]["share"] == 0.5 and rows["dcm vs pcm", "overall"]["answers"] == 3
    assert rows["dcm vs pcm", "visual_quality"]["answers"] == 0
    # dcm vs lcm overall: 2 + 0.5 of 5 answers
    assert rows["dcm vs lcm", "overall"]["share"] == pytest.approx(0.5)


def test_table_files(tmp_path, hand_study):
    write_table2(aggregate(*hand_study), tmp_path / "out")
    table = (tmp_path / "out" / "table2.md").read_text()
    assert "| dcm vs lcm | 62.5% [21.9, 90.8] (n=4) | 0.0% [0.0, 79.3] (n=1) | n/a | 50.0% [" in table
    lines = (tmp_path / "out" / "table2.csv").read_text().splitlines()
    assert lines[0].startswith("comparison,method,baseline,question,answers") and len(lines) == 9


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(rater="rater-09"), "unknown rater"),
    (lambda d: d["answers"].append({"pair": "pair-999", "question": "text_alignment", "choice": "left"}),
     "unknown pair id"),
    (lambda d: d["answers"].append(dict(d["answers"][0])), "duplicated answer"),
    (lambda d: d["answers"].append({"pair": "pair-001", "question": "text_alignment", "choice": "dcm"}),
     "choice 'dcm'"),
    (lambda d: d["answers"].append({"pair": "pair-001"}), "malformed answer"),
    (lambda d: d.update(study="other"), "another set of sheets"),
    (lambda d: d.pop("answers"), "not an answer file"),
])
def test_answer_file_not_matching_the_key(hand_study, mutate, message):
    (first, _), key_path = hand_study[0], hand_study[1]
    data = read_json(first)
    mutate(data)
    write_json(first, data)
    with pytest.raises(DCMError, match=message) as err:
        aggregate([first], key_path)
    assert str(first) in str(err.value)


def test_malformed_json_and_duplicate_rater(tmp_path, hand_study):
    files, key_path = hand_study
    broken = tmp_path / "broken.json"
    broken.write_text('{"study": "abc", "rater": ')
    with pytest.raises(DCMError, match="corrupt JSON in .*broken.json"):
        aggregate([broken], key_path)
    with pytest.raises(DCMError, match="both hold the answers of rater-00"):
        aggregate([files[0], files[0]], key_path)
    write_json(broken, {"study": "abc"})
    with pytest.raises(DCMError, match="broken.json is not a user-study key"):
        aggregate(files, broken)


def test_sheet_errors(tmp_path, sample_sets):
    with pytest.raises(DCMError, match="must not lie inside the sheets directory"):
        make_sheets(sample_sets, COMPARISONS, 2, None, 0, tmp_path / "s", tmp_path / "s" / "key.json")
    with pytest.raises(DCMError, match=r"pairs_per_rater=9 must lie in 1..8"):
        make_sheets(sample_sets, COMPARISONS, 2, 9, 0, tmp_path / "s", tmp_path / "key.json")
    meta = read_json(sample_sets["pcm"] / "meta.json")
    write_json(sample_sets["pcm"] / "meta.json", meta | {"prompts": ["another", "pair"]})
    with pytest.raises(DCMError, match="are not paired"):
        make_sheets(sample_sets, COMPARISONS, 2, None, 0, tmp_path / "s", tmp_path / "key.json")
    with pytest.raises(DCMError, match="no sample set given for method 'vcm'"):
        make_sheets(sample_sets, [("dcm", "vcm")], 2, None, 0, tmp_path / "s", tmp_path / "key.json")


def test_stages_userstudy_then_table2(tmp_path):
    cfg = load_config(SMOKE, [f"results_dir={tmp_path}", "userstudy.raters=2", "tracking.enabled=false"])
    run = tmp_path / "smoke"
    with pytest.raises(DCMError, match="run the 'sample' stage first"):
        userstudy.run(cfg)
    write_sample_sets(run, PROMPTS, sampling_seeds=[0])
    userstudy.run(cfg)
    assert sorted(p.name for p in (run / "userstudy").iterdir()) == [
        "README.txt", "config.resolved.yaml", "key.json", "sheets"]
    assert "userstudy-answers" in (run / "userstudy" / "README.txt").read_text()
    with pytest.raises(DCMError, match="no answer files in .*userstudy-answers"):
        table2.run(cfg)
    key = read_json(run / "userstudy" / "key.json")
    pairs = key["raters"]["rater-01"]
    _answers(run / "userstudy-answers" / "answers-rater-01.json", "rater-01",
             [(p, "visual_quality", "left") for p in pairs], study=key["study"])
    table2.run(cfg)
    with open(run / "tables" / "table2" / "table2.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for ours_vs, other in COMPARISONS:
        row = next(r for r in rows if r["comparison"] == f"{ours_vs} vs {other}" and r["question"] == "visual_quality")
        on_left = sum(p["left"] == "dcm" for p in pairs.values() if key["comparisons"][p["comparison"]][1] == other)
        assert (int(row["answers"]), int(row["prefer_method"])) == (2, on_left)


def test_prompt_with_html_is_escaped(tmp_path):
    sets = write_sample_sets(tmp_path / "run", ['<b>bold</b> & "quoted"'], sampling_seeds=[0])
    out, _, _ = _sheets(tmp_path, sets, raters=1)
    page = (out / "rater-00" / "index.html").read_text()
    assert "Prompt: &lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;<" in page and "<b>bold" not in page

"""Stage `userstudy`: blinded pairwise rater sheets of DCM against the baselines (the paper's Table 2) from the
sample sets at `userstudy.steps`, with the un-blinding key beside (never inside) the sheets."""

from __future__ import annotations

from pathlib import Path

from dcm.eval.userstudy.sheets import make_sheets
from dcm.stages.common import require, stage_dir, stage_output

README = """User study sheets (Table 2 of the DCM paper)

Hand out ONLY the folder sheets/ (all of it: the raters' pages load their videos from sheets/videos/).
Rater k opens sheets/rater-XX/index.html in a web browser (no network needed), answers the questions and
presses "Save answers", which downloads answers-rater-XX.json. Collect those files into the answers
directory ({answers_dir}) and run the `table2` stage.

Do NOT hand out key.json: it says which method produced each video. Keep it with these results; the
`table2` stage needs it to count the answers.
"""


def answers_dir(cfg: dict) -> Path:
    """Where the raters' answer files go: userstudy.answers_dir, else <results_dir>/<name>/userstudy-answers
    (outside this stage's output, so rerunning it never deletes answers)."""
    configured = cfg["userstudy"].get("answers_dir")
    return Path(configured) if configured else stage_dir(cfg, "userstudy-answers")


def run(cfg: dict) -> None:
    study = cfg["userstudy"]
    methods = sorted({m for comparison in study["comparisons"] for m in comparison})
    sample_sets = {m: require(stage_dir(cfg, "samples", f"{m}-{study['steps']}"), "sample") for m in methods}
    with stage_output(stage_dir(cfg, "userstudy"), cfg) as work:
        make_sheets(sample_sets, study["comparisons"], study["raters"], study["pairs_per_rater"], cfg["seed"],
                    work / "sheets", work / "key.json")
        (work / "README.txt").write_text(README.format(answers_dir=answers_dir(cfg)))

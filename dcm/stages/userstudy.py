"""Stage `userstudy`: blinded pairwise rater sheets of DCM against the baselines (the paper's Table 2) from the
sample sets at `userstudy.steps`, with the un-blinding key beside (never inside) the sheets."""

from __future__ import annotations

from dcm import layout
from dcm.eval.userstudy.sheets import make_sheets
from dcm.methods import userstudy_sets
from dcm.outputs import stage_output

README = """User study sheets (Table 2 of the DCM paper)

Hand out ONLY the folder sheets/ (all of it: the raters' pages load their videos from sheets/videos/).
Rater k opens sheets/rater-XX/index.html in a web browser (no network needed), answers the questions and
presses "Save answers", which downloads answers-rater-XX.json. Collect those files into the answers
directory ({answers_dir}) and run the `table2` stage.

Do NOT hand out key.json: it says which method produced each video. Keep it with these results; the
`table2` stage needs it to count the answers.
"""


def run(cfg: dict) -> None:
    study = cfg["userstudy"]
    run_dir = layout.run_dir(cfg)
    sample_sets = {layout.parse_sample_set(name)[0]: layout.require(layout.samples_dir(run_dir, name), "sample")
                   for name in userstudy_sets(cfg)}
    with stage_output(run_dir / "userstudy", cfg) as work:
        make_sheets(sample_sets, study["comparisons"], study["raters"], study["pairs_per_rater"], cfg["seed"],
                    work / "sheets", work / "key.json")
        (work / "README.txt").write_text(README.format(answers_dir=layout.answers_dir(cfg)))

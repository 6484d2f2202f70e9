"""Stage `table2`: the user-study preference table (the paper's Table 2) from the raters' answer files and the
`userstudy` stage's key."""

from __future__ import annotations

from dcm.errors import DCMError
from dcm.eval.userstudy.aggregate import aggregate, write_table2
from dcm import layout
from dcm.outputs import stage_output


def run(cfg: dict) -> None:
    run_dir = layout.run_dir(cfg)
    key = layout.require(run_dir / "userstudy" / "key.json", "userstudy")
    directory = layout.answers_dir(cfg)
    files = sorted(directory.glob("*.json"))
    if not files:
        raise DCMError(f"no answer files in {directory}: put the raters' answers-rater-XX.json files there "
                       "(or point userstudy.answers_dir at them), then rerun table2")
    rows = aggregate(files, key)
    with stage_output(layout.table_dir(run_dir, "2"), cfg) as work:
        write_table2(rows, work)

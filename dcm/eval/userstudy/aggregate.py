"""Count the raters' answers against the key: per comparison and question, the share of answers preferring the
comparison's first method (DCM in Table 2) with a 95% Wilson score interval, as CSV and Markdown."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from statistics import NormalDist

from dcm.errors import DCMError
from dcm.io import atomic_path, read_json

OVERALL = "overall"
Z95 = NormalDist().inv_cdf(0.975)
COLUMNS = ["comparison", "method", "baseline", "question", "answers", "prefer_method", "prefer_baseline", "same",
           "share", "ci_low", "ci_high"]


def wilson_interval(share: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson (1927) score interval: (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)."""
    denominator = 1 + z * z / n
    centre = (share + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _answer_list(path: Path, key: dict) -> tuple[str, list[dict]]:
    """The rater and answers of one answer file, checked for shape and against the key's study and raters."""
    data = read_json(path)
    if not (isinstance(data, dict) and isinstance(data.get("answers"), list) and isinstance(data.get("rater"), str)):
        raise DCMError(f"{path}: not an answer file (needs an object with `study`, `rater` and an `answers` list)")
    if data.get("study") != key["study"]:
        raise DCMError(f"{path}: study {data.get('study')!r} is not the study of this key ({key['study']}): "
                       "answers from another set of sheets")
    if data["rater"] not in key["raters"]:
        raise DCMError(f"{path}: unknown rater {data['rater']!r} (the key has {len(key['raters'])} raters)")
    return data["rater"], data["answers"]


def _votes(path: Path, rater: str, answers: list, key: dict) -> list[tuple[int, str, str]]:
    """(comparison index, question, 'method' | 'baseline' | 'same') for every answer of one file."""
    pairs, votes, seen = key["raters"][rater], [], set()
    for answer in answers:
        fields = ("pair", "question", "choice")
        if not isinstance(answer, dict) or not all(isinstance(answer.get(f), str) for f in fields):
            raise DCMError(f"{path}: malformed answer {answer!r} (needs pair, question, choice)")
        pair, question, choice = (answer[f] for f in fields)
        if pair not in pairs:
            raise DCMError(f"{path}: unknown pair id {pair!r} for {rater}")
        if question not in key["questions"] or choice not in key["choices"]:
            raise DCMError(f"{path}: pair {pair}: question {question!r} or choice {choice!r} is not one of "
                           f"{key['questions']} / {key['choices']}")
        if (pair, question) in seen:
            raise DCMError(f"{path}: duplicated answer for pair {pair}, question {question}")
        seen.add((pair, question))
        shown = pairs[pair]
        ours = key["comparisons"][shown["comparison"]][0]
        vote = "same" if choice == "same" else "method" if shown[choice] == ours else "baseline"
        votes.append((shown["comparison"], question, vote))
    return votes


def _row(comparison: list[str], question: str, votes: list[str]) -> dict:
    """One table row; 'same' answers count half for each side, so share = (prefer + same / 2) / answers."""
    n, prefer, same = len(votes), votes.count("method"), votes.count("same")
    share = (prefer + same / 2) / n if n else math.nan
    low, high = wilson_interval(share, n) if n else (math.nan, math.nan)
    return {"comparison": f"{comparison[0]} vs {comparison[1]}", "method": comparison[0], "baseline": comparison[1],
            "question": question, "answers": n, "prefer_method": prefer, "prefer_baseline": votes.count("baseline"),
            "same": same, "share": share, "ci_low": low, "ci_high": high}


def aggregate(answer_files: list[Path], key_path: Path) -> list[dict]:
    """Rows per comparison and question (plus `overall`, all three questions pooled) of the answers preferring
    the comparison's first method; 'same' counts as half a vote. The intervals treat answers as independent,
    which pooled questions and repeated raters are not: read them as a guide."""
    key = read_json(key_path)
    if not isinstance(key, dict) or not {"study", "raters", "comparisons", "questions", "choices"} <= key.keys():
        raise DCMError(f"{key_path} is not a user-study key (written by the userstudy stage)")
    votes, raters_seen = [], {}
    for path in map(Path, answer_files):
        rater, answers = _answer_list(path, key)
        if rater in raters_seen:
            raise DCMError(f"{path} and {raters_seen[rater]} both hold the answers of {rater}")
        raters_seen[rater] = path
        votes += _votes(path, rater, answers, key)
    rows = []
    for c, comparison in enumerate(key["comparisons"]):
        for question in [*key["questions"], OVERALL]:
            rows.append(_row(comparison, question, [v for i, q, v in votes
                                                    if i == c and question in (q, OVERALL)]))
    return rows


def _percent(row: dict) -> str:
    """`82.7% [75.3, 88.4] (n=150)`, or `n/a` without answers."""
    if not row["answers"]:
        return "n/a"
    return f"{100 * row['share']:.1f}% [{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}] (n={row['answers']})"


def markdown_table2(rows: list[dict]) -> str:
    """Table 2 layout: one line per comparison, one column per question."""
    questions = list(dict.fromkeys(r["question"] for r in rows))
    comparisons = list(dict.fromkeys(r["comparison"] for r in rows))
    cell = {(r["comparison"], r["question"]): _percent(r) for r in rows}
    lines = ["| Method comparison | " + " | ".join(q.replace("_", " ") for q in questions) + " |",
             "|---|" + "---|" * len(questions)]
    lines += [f"| {c} | " + " | ".join(cell[c, q] for q in questions) + " |" for c in comparisons]
    return ("Share of answers preferring the first method of each comparison ('about the same' counts half), "
            "with the 95% Wilson score interval and the number of answers.\n\n" + "\n".join(lines) + "\n")


def write_table2(rows: list[dict], out_dir: Path) -> None:
    """Write `table2.csv` (every row and count) and `table2.md` (the paper's layout) atomically."""
    with atomic_path(Path(out_dir) / "table2.csv") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with atomic_path(Path(out_dir) / "table2.md") as tmp:
        tmp.write_text(markdown_table2(rows))

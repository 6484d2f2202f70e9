"""What raters are asked and how their answers are named: shared by the sheets, the page and the count."""

from __future__ import annotations

# The paper's three questions (Sec. 4.2, after HunyuanVideo's preference protocol), with the wording shown.
QUESTIONS = {
    "text_alignment": "Which video matches the text prompt better?",
    "motion_quality": "Which video moves better (natural, smooth, coherent motion)?",
    "visual_quality": "Which video looks better (sharpness, detail, colours, no artefacts)?",
}
CHOICES = {"left": "Left", "same": "About the same", "right": "Right"}


def rater_id(index: int, raters: int) -> str:
    """`rater-XX`, zero-padded to at least two digits and to the width of the largest index."""
    return f"rater-{index:0{max(2, len(str(raters - 1)))}d}"


def answers_file_name(rater: str) -> str:
    """The file name a rater's page saves its answers under."""
    return f"answers-{rater}.json"

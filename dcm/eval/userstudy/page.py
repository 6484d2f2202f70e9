"""One rater's static HTML sheet: prompts as escaped text, two looping videos per pair, the three questions,
and a button that saves the answers as JSON (a Blob download, also shown in a read-only text box). It names
no method anywhere and loads nothing from the network, so it works when opened from file://."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from dcm.eval.userstudy.protocol import CHOICES, QUESTIONS, answers_file_name

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 60em; background: #fafafa; color: #222; }
section.pair { background: #fff; border: 1px solid #ccc; border-radius: 6px; padding: 1em; margin: 1.5em 0; }
p.prompt { font-size: 1.15em; white-space: pre-wrap; }
div.videos { display: flex; gap: 2em; justify-content: center; }
figure { margin: 0; text-align: center; }
img { image-rendering: pixelated; border: 1px solid #888; background: #000; }
fieldset { border: none; margin: 0.6em 0; padding: 0; }
legend { font-weight: bold; }
label { margin-right: 1.5em; }
textarea { width: 100%; font-family: monospace; }
"""

# Reads the page's data-* attributes and the checked radio buttons; no network, no storage.
SCRIPT = """
"use strict";
const sheet = document.querySelector("main");
function collectAnswers() {
  const answers = [];
  for (const input of document.querySelectorAll("input[type=radio]:checked")) {
    answers.push({pair: input.dataset.pair, question: input.dataset.question, choice: input.value});
  }
  return {study: sheet.dataset.study, rater: sheet.dataset.rater, answers: answers};
}
document.getElementById("save").addEventListener("click", () => {
  const result = collectAnswers();
  const text = JSON.stringify(result, null, 2);
  document.getElementById("answers").value = text;
  const total = document.querySelectorAll("fieldset").length;
  document.getElementById("status").textContent =
    result.answers.length + " of " + total + " questions answered; saved as " + sheet.dataset.filename +
    " (if no download appears, copy the text below into a file of that name).";
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], {type: "application/json"}));
  link.download = sheet.dataset.filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
});
"""


@dataclass(frozen=True)
class SheetPair:
    """One pair as a rater sees it: an opaque id, the prompt, and the two video files (relative URLs)."""

    pair_id: str
    prompt: str
    left_src: str
    right_src: str
    size: tuple[int, int]  # (width, height) of the video images in pixels


def _question(pair_id: str, key: str, text: str) -> str:
    """One question as a group of radio buttons whose value is the side chosen."""
    name = escape(f"{pair_id}.{key}")
    options = "".join(
        f'<label><input type="radio" name="{name}" value="{escape(value)}" data-pair="{escape(pair_id)}" '
        f'data-question="{escape(key)}"> {escape(label)}</label>' for value, label in CHOICES.items())
    return f"<fieldset><legend>{escape(text)}</legend>{options}</fieldset>"


def _pair_section(number: int, total: int, pair: SheetPair) -> str:
    """A pair's section: heading, the prompt as escaped text, the two videos, the three questions."""
    width, height = pair.size
    figures = "".join(
        f'<figure><img src="{escape(src)}" alt="{side} video" width="{width}" height="{height}">'
        f"<figcaption>{side}</figcaption></figure>" for side, src in (("Left", pair.left_src),
                                                                     ("Right", pair.right_src)))
    questions = "".join(_question(pair.pair_id, key, text) for key, text in QUESTIONS.items())
    return (f'<section class="pair" id="{escape(pair.pair_id)}"><h2>Pair {number} of {total}</h2>'
            f'<p class="prompt">Prompt: {escape(pair.prompt)}</p><div class="videos">{figures}</div>'
            f"{questions}</section>")


def render_page(study: str, rater: str, pairs: list[SheetPair]) -> str:
    """The complete HTML of one rater's sheet; every prompt and attribute value is HTML-escaped."""
    sections = "\n".join(_pair_section(k + 1, len(pairs), pair) for k, pair in enumerate(pairs))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Video comparison: {escape(rater)}</title>
<style>{STYLE}</style>
</head>
<body>
<main data-study="{escape(study)}" data-rater="{escape(rater)}" data-filename="{escape(answers_file_name(rater))}">
<h1>Video comparison ({escape(rater)})</h1>
<p>Each pair below shows a text prompt and two short looping videos generated from it. For each pair, answer
the three questions by choosing the left video, the right video, or "about the same". When you are done, press
<b>Save answers</b> at the bottom and send the downloaded file <code>{escape(answers_file_name(rater))}</code>
to the organiser.</p>
{sections}
<p><button id="save" type="button">Save answers</button></p>
<p id="status" role="status"></p>
<textarea id="answers" rows="10" readonly></textarea>
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""

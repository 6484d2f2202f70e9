"""Figures of the paper from result files: Fig. 2 (b) noise-level probe, Fig. 5 weight difference, Fig. 10 (trajectory distance and kappa
sweep) and the Fig. 3 / qualitative sample grids, plus tinybench's corruption sweeps and the ablation terms'
shares during training, and Tables 1 and 3 as plots with their error bars. Each writes one PNG
atomically; line plots are LINE_FIGSIZE inches at DPI (the sweeps' panel grid one LINE_FIGSIZE height a row),
sample grids are sized from their frames (see plot_sample_grid)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from dcm.errors import DCMError
from dcm.io import atomic_path

DPI = 100
LINE_FIGSIZE = (9.0, 3.6)  # inches: 900 x 360 pixels at DPI
GRID_LABEL_PX = 130  # left margin of a sample grid, for the method names
GRID_TITLE_PX = 40  # top margin of a sample grid, for the prompt and frame numbers
GRID_PAD_PX = 4  # white gap between frames
TERM_COLOURS = ("#1f3b5c", "#c0392b", "#27ae60", "#af7ac5", "#e67e22")  # one per curve, cycled


def _save(fig, path) -> None:
    """Write `fig` as PNG to `path` atomically, at its own size, and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)


def _require(data: dict, keys: tuple[str, ...], what: str) -> None:
    """A clear error naming the first key of `keys` that `data` lacks."""
    if not isinstance(data, dict):
        raise DCMError(f"{what}: expected a dict, got {type(data).__name__}")
    missing = [k for k in keys if k not in data]
    if missing:
        raise DCMError(f"{what}: missing key {missing[0]!r} (has {sorted(data)})")


def _finite_matrix(values, rows: int, cols: int, name: str) -> np.ndarray:
    """`values` as a (rows, cols) float array of finite numbers, or an error naming `name`."""
    array = np.asarray(values, dtype=float)
    if array.shape != (rows, cols):
        raise DCMError(f"noise probe: {name!r} has shape {array.shape}, expected (steps, buckets) = {(rows, cols)}")
    if not np.isfinite(array).all():
        raise DCMError(f"noise probe: {name!r} holds non-finite values")
    return array


def plot_noise_probe(probe: dict, path) -> None:
    """Fig. 2 (b): consistency loss and its gradient norm per noise-level bucket, one line per probed training
    step coloured by training progress (the noise_probe.json of the vcm stage)."""
    _require(probe, ("buckets", "steps", "loss", "grad_norm"), "noise probe")
    steps, buckets = list(probe["steps"]), probe["buckets"]
    if not steps or not buckets:
        raise DCMError("noise probe: no probed steps or no buckets to plot")
    panels = [("consistency loss", _finite_matrix(probe["loss"], len(steps), len(buckets), "loss")),
              ("gradient norm", _finite_matrix(probe["grad_norm"], len(steps), len(buckets), "grad_norm"))]
    labels = [f"{b['index_range'][0]}-{b['index_range'][1]}\n\u03c3 {b['sigma_range'][0]:.2f}-{b['sigma_range'][1]:.2f}"
              for b in buckets]
    colour = plt.get_cmap("viridis")
    norm = matplotlib.colors.Normalize(vmin=min(steps), vmax=max(max(steps), min(steps) + 1))
    fig, axes = plt.subplots(1, 2, figsize=LINE_FIGSIZE, dpi=DPI, layout="constrained")
    for ax, (title, values) in zip(axes, panels):
        for step, row in zip(steps, values):
            ax.plot(range(len(buckets)), row, marker="o", ms=3, color=colour(norm(step)))
        ax.set_xticks(range(len(buckets)), labels, fontsize=7)
        ax.set_xlabel("noise-level bucket (grid index, sigma)")
        ax.set_yscale("log" if (values > 0).all() else "linear")
        ax.set_title(title)
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=colour), ax=axes, label="training step")
    _save(fig, path)


def plot_trajectory_distance(data: dict, path) -> None:
    """Fig. 10 (left): mean (+- std) normalised L1 distance of each teacher step n -> n-1, with the suggested and
    (if given as `configured_kappa`) the configured kappa marked; sampling runs left to right (N -> 0)."""
    _require(data, ("index", "mean", "std", "suggested_kappa", "space"), "trajectory distance")
    index, mean, std = (np.asarray(data[k], dtype=float) for k in ("index", "mean", "std"))
    if index.ndim != 1 or len(index) == 0 or mean.shape != index.shape or std.shape != index.shape:
        raise DCMError(f"trajectory distance: 'index', 'mean' and 'std' must be equal-length non-empty lists, got "
                       f"lengths {index.size}, {mean.size}, {std.size}")
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        raise DCMError("trajectory distance: 'mean' or 'std' holds non-finite values")
    fig, ax = plt.subplots(figsize=LINE_FIGSIZE, dpi=DPI, layout="constrained")
    ax.fill_between(index, mean - std, mean + std, color="#8fb3d9", alpha=0.5, lw=0)
    ax.plot(index, mean, color="#1f3b5c", marker=".", label=f"mean over trajectories ({data['space']})")
    ax.axvline(data["suggested_kappa"], color="#c0392b", ls="--", label=f"suggested \u03ba = {data['suggested_kappa']}")
    if data.get("configured_kappa") is not None:
        ax.axvline(data["configured_kappa"], color="#27ae60", ls=":", lw=2,
                   label=f"configured \u03ba = {data['configured_kappa']}")
    ax.invert_xaxis()
    ax.set_xlabel("grid index n of the step n \u2192 n-1 (noise on the left)")
    ax.set_ylabel("normalised L1 distance")
    ax.set_title("L1 distance between adjacent teacher steps")
    ax.legend(fontsize=8)
    _save(fig, path)


SWEEP_SCORES = {"total": ("Total", "#1f3b5c"), "quality": ("Quality", "#2e86c1"), "semantic": ("Semantic", "#af7ac5")}
MARK_STYLES = (("#c0392b", "--"), ("#27ae60", ":"))  # colour and line style of each marked kappa


def plot_kappa_sweep(rows: list[dict], path, marks: dict[str, float] | None = None) -> None:
    """Fig. 10 (right): Total, Quality and Semantic against kappa, rows of the kappa sweep table ({"kappa",
    "<score>", "<score>_std"}, std over seeds) as error bars; `marks` draws labelled kappas (e.g. suggested)."""
    if not rows:
        raise DCMError("kappa sweep: no rows to plot")
    keys = ("kappa", *(k for score in SWEEP_SCORES for k in (score, f"{score}_std")))
    for row in rows:
        _require(row, keys, "kappa sweep row")
        if not all(math.isfinite(float(row[k])) for k in keys):
            raise DCMError(f"kappa sweep row {row}: non-finite value")
    rows = sorted(rows, key=lambda r: r["kappa"])
    kappas = [float(r["kappa"]) for r in rows]
    if len(set(kappas)) != len(kappas):
        raise DCMError(f"kappa sweep: repeated kappa values {kappas}")
    fig, ax = plt.subplots(figsize=LINE_FIGSIZE, dpi=DPI, layout="constrained")
    for score, (label, colour) in SWEEP_SCORES.items():
        ax.errorbar(kappas, [r[score] for r in rows], yerr=[r[f"{score}_std"] for r in rows], marker="o",
                    capsize=4, color=colour, label=label)
    marks = marks or {}
    if len(marks) > len(MARK_STYLES):
        raise DCMError(f"kappa sweep: at most {len(MARK_STYLES)} marked kappas, got {sorted(marks)}")
    for (label, kappa), (colour, style) in zip(marks.items(), MARK_STYLES):
        ax.axvline(kappa, color=colour, ls=style, lw=2, label=f"{label} \u03ba = {kappa:g}")
    ax.set_xticks(kappas, [f"{k:g}" for k in kappas])
    ax.set_xlabel("\u03ba (phase boundary on the teacher grid)")
    ax.set_ylabel("score (%), mean \u00b1 std over seeds")
    ax.set_title("Quality against \u03ba")
    ax.legend(fontsize=8)
    _save(fig, path)


def _spread_label(rows: list[dict]) -> str:
    """What a table's error bars span: training seeds where rows were trained more than once, else sampling
    seeds (the rows' `train_seeds` and `seeds` columns)."""
    trainings = max(int(r["train_seeds"]) for r in rows)
    if trainings > 1:
        return f"mean \u00b1 std over {trainings} training seeds"
    return f"mean \u00b1 std over {max(int(r['seeds']) for r in rows)} sampling seeds, one training"


def _table_rows(rows: list[dict], keys: tuple[str, ...], what: str) -> None:
    """A clear error for an empty table or a row that lacks `keys` or holds a non-finite score."""
    if not rows:
        raise DCMError(f"{what}: no rows to plot")
    for row in rows:
        _require(row, keys, f"{what} row")
        if not all(math.isfinite(float(row[k])) for k in ("total", "total_std")):
            raise DCMError(f"{what} row {row}: non-finite Total")


def plot_table1_scores(rows: list[dict], path) -> None:
    """Table 1 as a plot: each method's Total against its step count (log scale), its +- as error bars (std
    across training seeds, across sampling seeds for a row trained once; rows of the table JSON)."""
    _table_rows(rows, ("method", "steps", "total", "total_std", "train_seeds", "seeds"), "Table 1")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, ax = plt.subplots(figsize=LINE_FIGSIZE, dpi=DPI, layout="constrained")
    for method, colour in zip(methods, TERM_COLOURS * len(methods)):
        line = sorted((r for r in rows if r["method"] == method), key=lambda r: r["steps"])
        ax.errorbar([r["steps"] for r in line], [r["total"] for r in line], yerr=[r["total_std"] for r in line],
                    marker="o", capsize=4, color=colour, label=method)
    steps = sorted({int(r["steps"]) for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(steps, [str(k) for k in steps])
    ax.set_xlabel("sampling steps")
    ax.set_ylabel("Total (%)")
    ax.set_title(f"Table 1: Total, {_spread_label(rows)}")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_table3_scores(rows: list[dict], path) -> None:
    """Table 3 as a plot: each ablation row's Total as a bar with its +- as error bar, and above it the paired
    difference to the row above (Total points) with its p-value and, with several training seeds, how many of
    them differ positively (rows of the table JSON)."""
    _table_rows(rows, ("row", "variant", "total", "total_std", "train_seeds", "seeds", "paired_diff", "paired_p"),
                "Table 3")
    fig, ax = plt.subplots(figsize=LINE_FIGSIZE, dpi=DPI, layout="constrained")
    positions = np.arange(len(rows))
    totals, spreads = [r["total"] for r in rows], [r["total_std"] for r in rows]
    ax.bar(positions, totals, yerr=spreads, capsize=4, color=TERM_COLOURS[0], alpha=0.8)
    for x, row in zip(positions, rows):
        if row["paired_diff"] is not None:
            seeds = f"\n{row['paired_seeds_positive']} seeds +" if row.get("paired_seeds_positive") else ""
            ax.annotate(f"{row['paired_diff']:+.2f}\np={row['paired_p']:.2g}{seeds}",
                        (x, row["total"] + row["total_std"]), xytext=(0, 3), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7)
    ax.set_xticks(positions, [f"{r['row']} {r['variant']}" for r in rows])
    low = min(t - s for t, s in zip(totals, spreads))
    high = max(t + s for t, s in zip(totals, spreads))
    ax.set_ylim(low - 0.5 * (high - low) - 1, high + 0.5 * (high - low) + 1)
    ax.set_ylabel("Total (%)")
    ax.set_title(f"Table 3: Total, {_spread_label(rows)}; above: paired difference to the row above")
    _save(fig, path)


SWEEP_PANELS_PER_ROW = 3
SWEEP_COLUMNS = ("corruption", "unit", "level", *SWEEP_SCORES)


def plot_tinybench_sweeps(table, path) -> None:
    """Tinybench against corruption strength: one panel per corruption (in the table's order, SWEEP_PANELS_PER_ROW
    a row, each row LINE_FIGSIZE high), Total, Quality and Semantic against its level, from the DataFrame of
    dcm.eval.tinybench.sweeps.sweep."""
    missing = [c for c in SWEEP_COLUMNS if c not in table.columns]
    if missing:
        raise DCMError(f"tinybench sweeps: missing column {missing[0]!r} (has {sorted(table.columns)})")
    if table.empty:
        raise DCMError("tinybench sweeps: no rows to plot")
    if not np.isfinite(table[["level", *SWEEP_SCORES]].to_numpy(dtype=float)).all():
        raise DCMError("tinybench sweeps: non-finite level or score")
    corruptions = list(dict.fromkeys(table["corruption"]))
    rows = math.ceil(len(corruptions) / SWEEP_PANELS_PER_ROW)
    fig, axes = plt.subplots(rows, SWEEP_PANELS_PER_ROW, figsize=(LINE_FIGSIZE[0], rows * LINE_FIGSIZE[1]), dpi=DPI,
                             layout="constrained", squeeze=False, sharey=True)
    for ax, name in zip(axes.flat, corruptions):
        panel = table[table["corruption"] == name]
        for score, (label, colour) in SWEEP_SCORES.items():
            ax.plot(panel["level"], panel[score], marker="o", ms=3, color=colour, label=label)
        ax.set_xlabel(panel["unit"].iloc[0])
        ax.set_title(name.replace("_", " "))
    for ax in axes.flat[len(corruptions):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("tinybench score (%)")
    axes.flat[0].legend(fontsize=8)
    _save(fig, path)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` steps (fewer at the start), the same length as `values`."""
    sums = np.cumsum(np.insert(np.asarray(values, dtype=float), 0, 0.0))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def plot_training_terms(share: dict[str, dict[str, np.ndarray]], share_label: str,
                        accuracy: dict[str, dict[str, np.ndarray]], path) -> None:
    """The ablation terms at work during training: left, `share_label` per step of each run in `share`
    ({"step", "share"}); right, the discriminator's accuracy on real and on fake samples per step of each run in
    `accuracy` ({"step", "real", "fake"}), 0.5 being chance. Each curve is drawn raw (faint) and as a trailing
    mean over a 20th of its steps; an empty dict leaves its panel out."""
    panels = [(name, runs) for name, runs in (("share", share), ("accuracy", accuracy)) if runs]
    if not panels:
        raise DCMError("training terms: no run logged a term share or a discriminator accuracy")
    for name, runs in panels:
        for run, curve in runs.items():
            lengths = {len(v) for v in curve.values()}
            if len(lengths) != 1 or 0 in lengths:
                raise DCMError(f"training terms: run {run!r} has curves of lengths {sorted(lengths)}")
            if not all(np.isfinite(np.asarray(v, dtype=float)).all() for v in curve.values()):
                raise DCMError(f"training terms: run {run!r} holds non-finite values")
    fig, axes = plt.subplots(1, len(panels), figsize=LINE_FIGSIZE, dpi=DPI, layout="constrained", squeeze=False)
    for ax, (name, runs) in zip(axes.flat, panels):
        series = [(run, key) for run in runs for key in (("share",) if name == "share" else ("real", "fake"))]
        for (run, key), colour in zip(series, TERM_COLOURS * len(series)):
            steps, values = runs[run]["step"], runs[run][key]
            label = run if name == "share" else f"{run}: {key}"
            ax.plot(steps, values, color=colour, alpha=0.25, lw=0.8)
            ax.plot(steps, smooth(values, max(1, len(values) // 20)), color=colour, lw=1.8, label=label,
                    ls="-" if key != "fake" else "--")
        if name == "share":
            ax.set_ylabel(share_label)
            ax.set_title("Temporal coherence in SemE training")
        else:
            ax.axhline(0.5, color="grey", ls=":", lw=1.5, label="chance")
            ax.set_ylabel("discriminator accuracy")
            ax.set_title("Discriminator in DetE training")
        ax.set_ylim(0, 1)
        ax.set_xlabel("training step")
        ax.legend(fontsize=8)
    _save(fig, path)


def plot_weight_difference(result: dict, path) -> None:
    """Fig. 5: normalised L1 distance between the two experts per layer group (bars), each tensor a dot."""
    groups = list(result["groups"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(range(len(groups)), [result["groups"][g]["normalised_l1"] for g in groups], color="#8fb3d9")
    for i, g in enumerate(groups):
        values = [r["normalised_l1"] for r in result["tensors"] if r["group"] == g]
        ax.scatter([i] * len(values), values, s=8, color="#1f3b5c", zorder=3)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylabel("normalised L1 distance")
    ax.set_title("SemE vs DetE weights (two full experts)")
    fig.tight_layout()
    _save(fig, path)


def sample_grid_size(methods: int, frames: int, height: int, width: int, scale: int) -> tuple[int, int]:
    """(width, height) in pixels of plot_sample_grid's PNG for `methods` rows of `frames` frames."""
    return (GRID_LABEL_PX + frames * (width * scale + GRID_PAD_PX),
            GRID_TITLE_PX + methods * (height * scale + GRID_PAD_PX))


def plot_sample_grid(sets: dict[str, torch.Tensor], path, prompts: list[str], video: int = 0, scale: int = 8) -> None:
    """Fig. 3 / qualitative grid: one row per method (in the dict's order), the frames of video `video` (the
    same noise and prompt in every set; seed-major, so its prompt is prompts[video % len(prompts)]) left to
    right, each frame upscaled `scale` times with nearest neighbour."""
    if not sets:
        raise DCMError("sample grid: no sample sets given")
    shape = None
    for method, videos in sets.items():
        if not torch.is_tensor(videos) or videos.dtype != torch.uint8 or videos.ndim != 5 or videos.shape[-1] != 3:
            raise DCMError(f"sample grid: set {method!r} must be a uint8 tensor (B, T, H, W, 3), got "
                           f"{getattr(videos, 'dtype', type(videos).__name__)} {tuple(getattr(videos, 'shape', ()))}")
        if shape is not None and videos.shape[1:] != shape:
            raise DCMError(f"sample grid: set {method!r} has frames {tuple(videos.shape[1:])}, others {tuple(shape)}")
        if not 0 <= video < len(videos):
            raise DCMError(f"sample grid: video {video} is outside set {method!r} of {len(videos)} videos")
        shape = videos.shape[1:]
    if not prompts:
        raise DCMError("sample grid: no prompts given (the sets' meta.json 'prompts')")
    if scale < 1:
        raise DCMError(f"sample grid: scale={scale} must be at least 1")
    frames, height, width, _ = shape
    cell_h, cell_w = height * scale + GRID_PAD_PX, width * scale + GRID_PAD_PX
    canvas = np.full((len(sets) * cell_h, frames * cell_w, 3), 255, dtype=np.uint8)
    for r, videos in enumerate(sets.values()):
        clip = videos[video].cpu().numpy().repeat(scale, axis=1).repeat(scale, axis=2)
        for f in range(frames):
            canvas[r * cell_h:r * cell_h + height * scale, f * cell_w:f * cell_w + width * scale] = clip[f]
    size_w, size_h = sample_grid_size(len(sets), frames, height, width, scale)
    fig = plt.figure(figsize=(size_w / DPI, size_h / DPI), dpi=DPI)
    ax = fig.add_axes((GRID_LABEL_PX / size_w, 0, canvas.shape[1] / size_w, canvas.shape[0] / size_h))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_yticks([r * cell_h + height * scale / 2 for r in range(len(sets))], list(sets), fontsize=9)
    ax.set_xticks([f * cell_w + width * scale / 2 for f in range(frames)], [str(f) for f in range(frames)], fontsize=7)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.suptitle(f"\u201c{prompts[video % len(prompts)]}\u201d (frames left to right)", fontsize=9,
                 y=1 - 4 / size_h, va="top")
    _save(fig, Path(path))

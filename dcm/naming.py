"""Names shared by the stages and the workflow, kept free of torch so that building the Snakemake DAG stays
fast: the SemE directory of a variant, expert-mix method names (Fig. 3) and the sample sets of Table 1 and
Fig. 3."""

from __future__ import annotations

from dataclasses import dataclass

from dcm.errors import DCMError

SEMANTIC_CHOICES = ("seme", "vcm")
DETAIL_CHOICES = ("dete", "vcm")
DEFAULT_VARIANT = "od"


@dataclass(frozen=True)
class MixedMethod:
    """Which denoiser runs each phase, and the Table 3 variant the experts are taken from."""

    semantic: str
    detail: str
    variant: str = DEFAULT_VARIANT


def parse_mixed_method(method: str) -> MixedMethod | None:
    """The MixedMethod a name like `seme+vcm` or `vcm+dete@dcm` denotes; None for a name without '+'."""
    if "+" not in method:
        return None
    pair, _, variant = method.partition("@")
    semantic, _, detail = pair.partition("+")
    if semantic not in SEMANTIC_CHOICES or detail not in DETAIL_CHOICES or (not variant and "@" in method):
        raise DCMError(f"mixed method {method!r}: expected <{'|'.join(SEMANTIC_CHOICES)}>+"
                       f"<{'|'.join(DETAIL_CHOICES)}>[@variant], e.g. seme+vcm or vcm+dete@od")
    return MixedMethod(semantic, detail, variant or DEFAULT_VARIANT)

#: Fig. 3's panels: label -> sample-set method (the OD variant's two full experts, as in Sec. 3.2)
FIGURE3_PANELS = {"VCM": "vcm", "SemE+VCM": "seme+vcm", "VCM+DetE": "vcm+dete", "SemE+DetE": "od"}


def seme_name(flags: dict) -> str:
    """SemE output name of a variant: one per temporal-coherence setting, shared by the variants that agree."""
    return "tc" if flags["temporal_coherence"] else "plain"


def table1_sets(cfg: dict) -> list[str]:
    """Table 1's sample sets: the teacher at its full step count, then the teacher's own few-step Euler solve
    (a reference row the paper does not have), LCM, PCM and DCM (`tables.method`) at each step count."""
    sampling = cfg["sampling"]
    return [f"teacher-{sampling['teacher_steps']}"] + [
        f"{m}-{k}" for k in sampling["steps"] for m in ("teacher", "lcm", "pcm", cfg["tables"]["method"])]


def figure3_sets(cfg: dict) -> list[str]:
    """Fig. 3's sample sets, at the ablation's step count."""
    return [f"{m}-{cfg['tables']['ablation_steps']}" for m in FIGURE3_PANELS.values()]


def sample_sets(cfg: dict) -> list[str]:
    """The sample sets the run scores: the teacher at its full step count, then the teacher, LCM, PCM and every
    variant at each step count."""
    sampling = cfg["sampling"]
    return [f"teacher-{sampling['teacher_steps']}"] + [
        f"{m}-{k}" for k in sampling["steps"] for m in ("teacher", "lcm", "pcm", *cfg["variants"])]


def compare_sets(cfg: dict) -> list[str]:
    """The sample sets `compare` measures against the full-step teacher: every scored set and Fig. 3's mixes."""
    return sorted(set(sample_sets(cfg) + figure3_sets(cfg)))


def seed_slices(prompts: int, seeds: int) -> list[slice]:
    """The videos of each sampling seed in a sample set, which is seed-major: video k * prompts + i is prompt i
    under seed k."""
    return [slice(k * prompts, (k + 1) * prompts) for k in range(seeds)]

"""The phase schedule of a run, built once from its config (paper Sec. 3.1-3.2): the teacher grid, the phase
edges of each way of cutting it, the phase of a grid index, few-step schedules and the expert switch.

Index convention (the paper's): grid index i = 0..N, x_{t_N} is pure noise (sigma_N = 1) and x_{t_0} the clean
end (sigma_0 = 0). The semantic phase is [kappa, N], the detail phase [0, kappa]; the detail expert runs at
and below kappa. Beyond the paper, each expert's phase can be cut into `expert_phases` uniform sub-phases (each
expert then a phased consistency model of its own sub-trajectory; 1, the paper's DCM, is the default). The index
arithmetic is torch-free (config validation and the workflow use it); the sigmas are computed on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property

from dcm.errors import DCMError

#: how a method cuts the teacher grid into phases (a method's `cut` in dcm/methods.py)
CUTS = ("whole", "experts", "pcm")
#: pcm.phases for official PCM: one network per sampling step count K, trained with K phases
PHASES_PER_STEP = "steps"


def _rounded_linspace(hi: int, lo: int, intervals: int) -> list[int]:
    """`intervals + 1` evenly spaced points from hi down to lo, each rounded half to even (exact arithmetic)."""
    return [round(Fraction(hi * intervals - (hi - lo) * j, intervals)) for j in range(intervals + 1)]


def uniform_edges(num_steps: int, phases: int) -> list[int]:
    """`phases` sub-trajectories of near-equal length on the grid, as descending edges [N, ..., 0] (PCM)."""
    problem = phases_problem(num_steps, phases)
    if problem:
        raise DCMError(f"phases={phases}: {problem}")
    return _rounded_linspace(num_steps, 0, phases)


def phases_problem(num_steps: int, phases: int) -> str | None:
    """Why a grid of `num_steps` intervals cannot be cut into `phases` uniform phases, or None when it can."""
    if not 1 <= phases <= num_steps:
        return f"a phase count must lie in 1..{num_steps}, one grid interval at least per phase"
    return None


@dataclass(frozen=True)
class PhaseSchedule:
    """Grid, phases and few-step schedules of one config; `kappa` is read from the config here and nowhere else."""

    num_steps: int  # N: intervals of the teacher grid
    kappa: int  # phase boundary index: semantic phase [kappa, N], detail phase [0, kappa]
    shift: float  # timestep shift of the flow-matching grid
    pcm_phases: int | str  # PCM's number of sub-trajectories (pcm.phases), or PHASES_PER_STEP: one per step
    backbone: str = "tiny"  # backbone.name: whose pipeline builds the grid (dcm/grids.py)
    expert_phases: int = 1  # schedule.expert_phases: uniform sub-phases inside each expert's phase

    @classmethod
    def from_config(cls, cfg: dict) -> "PhaseSchedule":
        """The schedule of a validated config."""
        schedule = cfg["schedule"]
        return cls(schedule["num_steps"], schedule["kappa"], schedule["shift"], cfg["pcm"]["phases"],
                   cfg["backbone"]["name"], schedule["expert_phases"])

    def pcm_phase_count(self, steps: int | None = None) -> int:
        """PCM's phase count for a `steps`-step sampler: a fixed pcm.phases, else `steps` (one phase per step)."""
        if self.pcm_phases != PHASES_PER_STEP:
            return self.pcm_phases
        if steps is None:
            raise DCMError(f"pcm.phases={PHASES_PER_STEP}: PCM's edges follow the sampling step count, and none was "
                           "given")
        return steps

    def with_pcm_phases(self, phases: int) -> "PhaseSchedule":
        """The same grid with PCM cut into `phases` phases: the schedule of PCM's network of that phase count."""
        return replace(self, pcm_phases=phases)

    def expert_phases_problem(self) -> str | None:
        """Why each expert's phase cannot be cut into `expert_phases` sub-phases, or None when it can."""
        for name, (hi, lo) in (("semantic", (self.num_steps, self.kappa)), ("detail", (self.kappa, 0))):
            if phases_problem(hi - lo, self.expert_phases):
                return (f"schedule.expert_phases={self.expert_phases} sub-phases need as many grid intervals in each "
                        f"expert's phase, but the {name} phase [{hi}, {lo}] has {hi - lo} ({self.cut_keys('experts')})")
        return None

    def edges(self, cut: str, steps: int | None = None) -> list[int]:
        """Descending phase edges: whole [N, 0]; experts [N, kappa, 0], each of its two phases cut into
        `expert_phases` near-equal sub-phases; pcm near-equal phases, as many as `pcm_phase_count(steps)`."""
        if cut == "whole":
            return [self.num_steps, 0]
        if cut == "experts":
            problem = self.expert_phases_problem()
            if problem:
                raise DCMError(problem)
            return (_rounded_linspace(self.num_steps, self.kappa, self.expert_phases)
                    + _rounded_linspace(self.kappa, 0, self.expert_phases)[1:])
        if cut == "pcm":
            return uniform_edges(self.num_steps, self.pcm_phase_count(steps))
        raise DCMError(f"unknown phase cut {cut!r}; known: {', '.join(CUTS)}")

    @property
    def semantic_edges(self) -> list[int]:
        """[N, ..., kappa]: the semantic expert's phase and its sub-phase edges ([N, kappa] in the paper)."""
        return self.edges("experts")[:self.expert_phases + 1]

    @property
    def detail_edges(self) -> list[int]:
        """[kappa, ..., 0]: the detail expert's phase and its sub-phase edges ([kappa, 0] in the paper)."""
        return self.edges("experts")[self.expert_phases:]

    @property
    def semantic_range(self) -> tuple[int, int]:
        """(low, high) grid indices the semantic expert trains on: n in (kappa, N]."""
        return self.kappa, self.num_steps

    @property
    def detail_range(self) -> tuple[int, int]:
        """(low, high) grid indices the detail expert trains on: n in (0, kappa]."""
        return 0, self.kappa

    def phase_of(self, index: int) -> str:
        """'detail' at or below kappa, else 'semantic' (the expert that runs a step starting at `index`)."""
        if not 0 <= index <= self.num_steps:
            raise DCMError(f"grid index {index} is outside 0..{self.num_steps}")
        return "detail" if index <= self.kappa else "semantic"

    def cut_keys(self, cut: str) -> str:
        """The config keys that place the edges of `cut`, with their values."""
        sub_phases = f"schedule.expert_phases={self.expert_phases}, " if self.expert_phases != 1 else ""
        keys = {"whole": "", "experts": f"schedule.kappa={self.kappa}, {sub_phases}",
                "pcm": f"pcm.phases={self.pcm_phases}, "}
        return f"{keys[cut]}schedule.num_steps={self.num_steps}"

    def step_problem(self, cut: str, steps: int) -> str | None:
        """Why a `steps`-step sampler cannot be laid on this cut of the grid, or None when it can."""
        if steps < 1:
            return "a step count must be at least 1"
        misfit = phases_problem(self.num_steps, self.pcm_phase_count(steps)) if cut == "pcm" else None
        if misfit:
            return f"PCM's {self.pcm_phase_count(steps)} phases: {misfit} ({self.cut_keys(cut)})"
        if cut == "experts" and (problem := self.expert_phases_problem()):
            return problem
        edges = self.edges(cut, steps)
        phases = len(edges) - 1
        if steps % phases:
            return f"it is not a multiple of the {phases} phases of edges {edges} ({self.cut_keys(cut)})"
        per_phase = steps // phases
        shortest = min(hi - lo for hi, lo in zip(edges[:-1], edges[1:]))
        if shortest < per_phase:
            return (f"{per_phase} steps per phase need {per_phase} grid intervals in each phase, but the shortest "
                    f"phase of edges {edges} has {shortest} ({self.cut_keys(cut)})")
        return None

    def few_step(self, cut: str, steps: int) -> list[int]:
        """Grid indices of a `steps`-step sampler: the steps spread evenly over the phases of `cut`, uniform
        inside each, so the last step of a phase lands on its edge."""
        problem = self.step_problem(cut, steps)
        if problem:
            raise DCMError(f"{steps} sampling steps: {problem}")
        edges = self.edges(cut, steps)
        per_phase = steps // (len(edges) - 1)
        schedule = [edges[0]]
        for hi, lo in zip(edges[:-1], edges[1:]):
            schedule.extend(_rounded_linspace(hi, lo, per_phase)[1:])
        return schedule

    @cached_property
    def grid(self):
        """(sigmas, timesteps): float64 arrays over grid index 0..N as the backbone's pipeline builds them."""
        from dcm.grids import backbone_grid

        return backbone_grid(self.backbone, self.num_steps, self.shift)

    @cached_property
    def sigmas(self):
        """sigma_i for i = 0..N (float64 tensor, ascending in i): the backbone's grid."""
        import torch

        return torch.from_numpy(self.grid[0])

    @property
    def timesteps(self) -> list[float]:
        """The network's timestep input at each grid index 0..N (index 0, the clean end, is never evaluated)."""
        return self.grid[1].tolist()

    @property
    def sigma_kappa(self) -> float:
        """sigma at the phase boundary, where the expert switches."""
        return float(self.sigmas[self.kappa])

    def at_kappa(self, kappa: int) -> "PhaseSchedule":
        """The same grid cut at another kappa (a point of the kappa sweep)."""
        return replace(self, kappa=kappa)

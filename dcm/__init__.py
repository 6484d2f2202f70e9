"""DCM: Dual-Expert Consistency Model, a reproducible pipeline (Lv et al., ICCV 2025)."""

__version__ = "0.1.0"

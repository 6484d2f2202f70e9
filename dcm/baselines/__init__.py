"""Baselines the paper compares with: LCM (here) and PCM (dcm.consistency with uniform phase edges)."""

"""Procedural video data for the embedded tiny setting."""

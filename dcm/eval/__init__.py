"""Measurements on generated videos."""

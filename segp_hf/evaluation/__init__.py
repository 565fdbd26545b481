"""Measuring: accuracy rounds, continual metrics, zero-shot retention, drift measures."""

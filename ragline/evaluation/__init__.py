"""Offline evaluation: BEIR datasets, ranking metrics, the `ragline eval` sweeps and their reports."""

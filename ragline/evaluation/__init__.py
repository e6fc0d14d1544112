"""Offline evaluation: BEIR datasets, ranking metrics, `ragline eval` sweeps, reports."""

"""Honest offline evaluation: temporal split, paper metrics, baselines on the same split."""

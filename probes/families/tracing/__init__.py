"""Causal tracing (Meng et al. 2022, ROME): the model knows facts, and their recall is localised at the last
subject token in the early-to-middle layers.

``analysis``: the measurements its claims call. Its claims (family ``"tracing"``):
claims/test_tracing.py of the interp-claims repository.
"""

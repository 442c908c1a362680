"""Causal tracing (Meng et al. 2022, ROME): the model knows facts, and their recall is localised at the last subject
token in the early-to-middle layers.

``analysis``: the measurements its claims call; ``figures``: their figures, drawn with the helpers of probes.figures.
Its claims (family ``"tracing"``) are claims/test_tracing.py of the interp-claims repository.
"""

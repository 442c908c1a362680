"""Sinks: most heads put most of their attention on the first token, and a few residual dimensions at a few tokens carry
activations orders of magnitude larger than the rest (Xiao et al. 2023; Sun et al. 2024).

``analysis``: the measurements its claims call (with the generic probes.attention); ``figures``: their figures, drawn
with the helpers of probes.figures. Its claims (family ``"sinks"``) are claims/test_sinks.py of the interp-claims
repository.
"""

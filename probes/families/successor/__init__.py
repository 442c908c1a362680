"""Successor heads (Gould et al. 2023): an attention head's OV circuit maps members of ordinal sequences (digits, days,
months, ...) to their successors.

``analysis``: the measurements its claims call (with probes.attention's head names); ``figures``: their figures, drawn
with the helpers of probes.figures. Its claims (family ``"successor"``) are claims/test_successor.py of the
interp-claims repository.
"""

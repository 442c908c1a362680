"""Induction: previous-token heads, induction heads and the composition between them (Elhage et al. 2021; Olsson et al.
2022), on random token sequences repeated once.

``analysis``: the measurements its claims call (with the generic probes.attention); ``figures``: their figures, drawn
with the helpers of probes.figures. Its claims (family ``"induction"``) are claims/test_induction.py of the
interp-claims repository.
"""

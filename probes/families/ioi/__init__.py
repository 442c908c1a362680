"""IOI: a few attention heads carry indirect-object identification (seed 004, M. X. Cohen's Project 41; Wang et al.
2022): behaviour, head silencing and patching (batched), head activations and mention selectivity.

``analysis``: the measurements its claims call; ``figures``: their figures, drawn with the helpers of probes.figures.
Its claims (family ``"ioi"``) are claims/test_ioi.py of the interp-claims repository.
"""

"""Lesion: MLP neurons that separate "him" from "her", and what zeroing them does to masked-token logits (seed 001, M.
X. Cohen's Project 46).

``analysis``: the measurements its claims call; ``figures``: their figures, drawn with the helpers of probes.figures.
Its claims (family ``"lesion"``) are claims/test_lesion.py of the interp-claims repository.
"""

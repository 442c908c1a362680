"""Lesion: MLP neurons that separate "him" from "her", and what zeroing them does to masked-token logits
(seed 001, M. X. Cohen's Project 46).

``analysis``: the measurements its claims call. Its claims (family ``"lesion"``):
claims/test_lesion.py of the interp-claims repository.
"""

"""Successor heads (Gould et al. 2023): an attention head's OV circuit maps members of ordinal sequences
(digits, days, months, ...) to their successors.

``analysis``: the measurements its claims call. Its claims (family ``"successor"``):
claims/test_successor.py of the interp-claims repository.
"""

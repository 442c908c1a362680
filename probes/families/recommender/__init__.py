"""Recommender: MLP projections carry enough meaning to recommend a token of one text from two others (seed 003, M. X.
Cohen's Project 50).

``analysis``: the measurements its claims call; ``figures``: their figures, drawn with the helpers of probes.figures.
Its claims (family ``"recommender"``) are claims/test_recommender.py of the interp-claims repository.
"""

"""Grammar: MLP expansion neurons tuned to nouns vs verbs (seed 000, M. X. Cohen's Project 44), reliably across word
splits and layers, and the stimuli's own length confound.

``analysis``: the measurements its claims call; ``figures``: their figures, drawn with the helpers of probes.figures.
Its claims (family ``"grammar"``) are claims/test_grammar.py of the interp-claims repository.
"""

"""Neuron: "John is tall. Mary is" -> " short" carried partly by a stand-out MLP neuron (seed 002; Miller & Neo 2023 for
the " an" neuron): logit lens, layer x position and neuron patching, congruence, top contexts.

``analysis``: the measurements its claims call; ``workflow``: those measurements chained into the seed's
Finding 1 (``investigate``); ``figures``: their figures, drawn with the helpers of probes.figures.
Its claims (family ``"neuron"``) are claims/test_neuron.py of the interp-claims repository.
"""

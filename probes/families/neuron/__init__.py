"""Neuron: "John is tall. Mary is" -> " short" carried partly by a stand-out MLP neuron (seed 002; Miller &
Neo 2023 for the " an" neuron): logit lens, layer x position and neuron patching, congruence, top contexts.

``analysis``: the measurements its claims call. Its claims (family ``"neuron"``):
claims/test_neuron.py of the interp-claims repository.
"""

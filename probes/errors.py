"""Errors that name the problem and the fix."""


class ProbeError(Exception):
    """Base class: every message says what went wrong and how to fix it."""


class UnknownModelError(ProbeError):
    pass


class ModelLoadError(ProbeError):
    pass


class StimulusError(ProbeError):
    """A stimulus word is not a single token, a target is missing, a sentence holds a target 0 or 2+ times."""


class NumericsError(ProbeError):
    """NaN or inf in activations or logits (e.g. fp16 overflow)."""


class SnapshotFileError(ProbeError):
    pass

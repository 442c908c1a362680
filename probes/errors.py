"""Errors that name the problem and the fix."""
from __future__ import annotations

import difflib
from typing import Iterable


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


class ClaimSnapshotError(ProbeError):
    """A claim's call of ``claim_snapshot`` names a number it did not hand over (an effect, identity, interval or
    stability path that matches no recorded number: probes/checks.py)."""


class ResourceError(ProbeError):
    """The device ran out of memory: the message names the batch size and the options that make it fit."""


class PreconditionFailed(AssertionError):
    """The behaviour a claim dissects is absent (e.g. no IOI score to patch, no tall/short gap): the claim has
    nothing to test. An AssertionError, so a registry known failure still matches it; its verdict is 'precondition
    failed', counted apart from a finding that failed (probes/verdicts.py)."""


def require(condition: bool, message: str) -> None:
    """A claim's precondition: raise :class:`PreconditionFailed` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise PreconditionFailed(message)


def nearest(word: str, known: Iterable[str]) -> str | None:
    """The nearest of ``known`` to a misspelt ``word`` (difflib), or None when none is near."""
    near = difflib.get_close_matches(str(word), [str(k) for k in known], n=1, cutoff=0.6)
    return near[0] if near else None


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``"; did you mean 'families'?"`` for the nearest of ``known``, or '' when none is near."""
    near = nearest(word, known)
    return f"; did you mean {near!r}?" if near else ""

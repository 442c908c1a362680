"""Stimuli are measured as written: a marked span (a fact's subject) is found in the whole text's tokens by
character offsets, never by tokenising the pieces apart (issue: "In " + "Brazil" became In, ' ', Brazil)."""
from pathlib import Path

import numpy as np
import pytest

from fixtures.loaders import stimuli
from fixtures.models import resolve
from probes import stats, tokens
from probes.errors import StimulusError
from probes.families.tracing import analysis as tracing
from probes.loading import load

ROOT = Path(__file__).resolve().parents[1]
FACTS = stimuli("facts_v1")["facts"]


@pytest.fixture(scope="module", params=["smollm2-135m", "gemma3-270m"])  # the models the tracing family runs on
def lm(request):
    return load(resolve(request.param), device="cpu")


def test_every_fact_is_tokenised_as_its_whole_text(lm):
    """The ids of every fact equal the whole text's (with the model's leading special tokens), and the subject's
    tokens decode to the subject."""
    f = tracing.tokenize(lm, FACTS)
    tok = lm.tokenizer
    for i, fact in enumerate(FACTS):
        text = (fact.get("prefix") or "") + fact["subject"] + fact["relation"]
        row = f.ids[i, :f.lengths[i]].tolist()
        assert row == tokens.prompt_ids(tok, text), fact["subject"]
        s, e = f.spans[i]
        assert tok.decode(row[s:e]).strip() == fact["subject"], (fact["subject"], tok.decode(row[s:e]))
    with_prefix = [i for i, x in enumerate(FACTS) if x.get("prefix")]
    assert with_prefix  # the facts the piecewise tokenisation got wrong ("In " + "Brazil")


def test_a_mark_without_characters_is_an_error(lm):
    with pytest.raises(StimulusError, match="covers no token"):
        tokens.marked(lm.tokenizer, "In Brazil people speak", 3, 3)


def test_the_nested_bootstrap_holds_both_random_sources():
    """Units whose values come from noise draws: the two-stage interval is wider than resampling the units alone
    when the draws vary within a unit, and equals it when they do not."""
    g = np.random.default_rng(0)
    unit = g.normal(0, 1, (16, 1))
    noisy = unit + g.normal(0, 3, (16, 4))
    two_stage = stats.nested_means(noisy).mean(1)
    units_only = stats.boot_means(noisy.mean(1))
    assert np.std(two_stage) > 1.1 * np.std(units_only)
    flat = np.repeat(unit, 4, axis=1)
    assert np.allclose(stats.nested_means(flat).mean(1), stats.boot_means(flat.mean(1)))

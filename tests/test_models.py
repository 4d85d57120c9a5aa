"""load_pair: presets, environment override and one-line errors (no network needed)."""

from __future__ import annotations

import pytest

import dynatree_lib.models.pairs as models


def test_load_pair_is_part_of_the_package_api():
    import dynatree_lib

    assert dynatree_lib.load_pair is models.load_pair
    assert dynatree_lib.ModelPair is models.ModelPair
    assert {"load_pair", "ModelPair"} <= set(dynatree_lib.__all__)


def test_unknown_pair_name():
    with pytest.raises(ValueError, match="unknown pair 'gpt5'"):
        models.load_pair("gpt5")


def test_environment_variable_overrides_the_default(monkeypatch):
    monkeypatch.setenv("DYNATREE_PAIR", "not-a-pair")
    with pytest.raises(ValueError, match="unknown pair 'not-a-pair'"):
        models.load_pair()


def test_unreachable_hub_names_the_embedded_preset(monkeypatch):
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(RuntimeError, match=r"unreachable.*load_pair\('embedded'\)"):
        models.load_pair("pythia")


def test_tokenizers_must_match():
    class Tok:
        def __init__(self, vocab):
            self.vocab = vocab

        def get_vocab(self):
            return self.vocab

    models.check_tokenizers(Tok({"a": 0}), Tok({"a": 0}))
    with pytest.raises(ValueError, match="tokenizers differ"):
        models.check_tokenizers(Tok({"a": 0}), Tok({"a": 1}))

"""Draft-quality probes on a tiny model (the embedded pair's are in test_embedded.py)."""

from __future__ import annotations

import pytest
from tiny_models import build_target


class CharTokenizer:
    """One id per character, inside the tiny target's vocabulary."""

    def __call__(self, text):
        return type("Encoded", (), {"input_ids": [ord(c) % 90 for c in text]})()


def test_early_exit_at_the_last_layer_but_one_is_measured_and_bad_layers_are_refused():
    """The early-exit probe: agreement per exit layer from one forward, a cost ratio below one
    for a shallow exit, and a clear error for an exit outside the target."""
    from dynatree_lib.harness.draft_quality import early_exit_agreement, early_exit_cost_ratio

    target = build_target("llama")
    tokenizer = CharTokenizer()
    depth = target.config.num_hidden_layers
    report = early_exit_agreement(target, tokenizer, [1, depth - 1], tokens=64, seq_len=16)
    assert report["tokens"] == 64 and len(report["top1"]) == 2
    assert all(0 <= a <= b <= 1 for a, b in zip(report["top1"], report["topk"], strict=True))
    cost = early_exit_cost_ratio(target, [1], prefix=20, repeats=3)
    assert len(cost["ratio"]) == 1 and cost["ratio"][0] > 0
    assert target.config.num_hidden_layers == depth and len(target.model.layers) == depth  # untouched
    with pytest.raises(ValueError, match="exit layers"):
        early_exit_agreement(target, tokenizer, [depth], tokens=64, seq_len=16)

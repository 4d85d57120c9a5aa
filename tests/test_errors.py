"""Bad input gets a clear error before any model work."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tiny_models import build_target, prompt

from dynatree_lib import (
    Autoregressive,
    DynaTree,
    FixedTree,
    Linear,
    UnsupportedModelError,
    check_tree_attention,
    generate,
)


@pytest.mark.parametrize("make, message", [
    (lambda: Linear(k=0), "k must be >= 1"),
    (lambda: Linear(k=2.5), "k must be an integer"),
    (lambda: FixedTree(depth=0), "depth must be >= 1"),
    (lambda: FixedTree(branch=0), "branch must be >= 1"),
    (lambda: FixedTree(threshold=1.5), "threshold must lie in"),
    (lambda: FixedTree(max_nodes=0), "max_nodes must be >= 1"),
    (lambda: DynaTree(min_branch=3, max_branch=2), "min_branch <= mid_branch <= max_branch"),
    (lambda: DynaTree(theta_low=0.9, theta_high=0.5), "theta_low"),
    (lambda: DynaTree(theta_high=0.0), "theta_high must lie in"),
    (lambda: DynaTree(rho_stop=0.6, rho_deep=0.5), "rho_stop"),
    (lambda: DynaTree(base_depth=9, max_depth=8), "base_depth"),
    (lambda: DynaTree(threshold=-0.1), "threshold must lie in"),
    (lambda: DynaTree(history_window=0), "history_window"),
    (lambda: DynaTree(depth_gain=-1), "depth_gain"),
])
def test_invalid_method_parameters(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def _no_forward(model):
    def hook(*args, **kwargs):
        raise AssertionError("a forward ran before the input was validated")
    return model.register_forward_pre_hook(hook)


@pytest.mark.parametrize("make_ids, kwargs, message", [
    (lambda: prompt(0).repeat(2, 1), {}, "batch size 2 is not supported"),
    (lambda: torch.zeros(1, 0, dtype=torch.long), {}, "prompt is empty"),
    (lambda: torch.tensor([[1, 2, 500]]), {}, "outside the target vocabulary"),
    (lambda: torch.tensor([[1, -2]]), {}, "outside the target vocabulary"),
    (lambda: torch.tensor([1, 2, 3]), {}, r"\[1, L\] LongTensor"),
    (lambda: torch.tensor([[1.0, 2.0]]), {}, r"\[1, L\] LongTensor"),
    (lambda: prompt(0), {"max_new_tokens": -1}, "max_new_tokens must be an integer >= 0"),
    (lambda: prompt(0, length=200), {"max_new_tokens": 100}, "context window of 256"),
])
def test_invalid_inputs(pair, make_ids, kwargs, message):
    target, draft = pair
    handles = [_no_forward(target), _no_forward(draft)]
    try:
        with pytest.raises(ValueError, match=message):
            generate(target, draft, make_ids(), DynaTree(), **{"max_new_tokens": 8, **kwargs})
    finally:
        for h in handles:
            h.remove()


def test_vocabulary_mismatch_and_opt_in():
    target = build_target("llama")
    draft = build_target("llama", seed=3)
    draft.resize_token_embeddings(128)  # same ids, padded embedding matrix
    with pytest.raises(ValueError, match="vocabularies differ"):
        generate(target, draft, prompt(0), Linear(k=3), 8)
    out = generate(target, draft, prompt(0), Linear(k=3), 8, eos_token_id=[], allow_vocab_padding=True)
    ar = generate(target, None, prompt(0), Autoregressive(), 8, eos_token_id=[])
    assert out.new_tokens == ar.new_tokens


def test_missing_draft_and_wrong_method(pair):
    target, _ = pair
    with pytest.raises(ValueError, match="needs a draft model"):
        generate(target, None, prompt(0), DynaTree(), 4)
    with pytest.raises(TypeError, match="method must be"):
        generate(target, None, prompt(0), "dynatree", 4)


def test_controller_needs_dynatree(pair):
    from dynatree_lib import HistoryController

    target, draft = pair
    with pytest.raises(ValueError, match="only applies to DynaTree"):
        generate(target, draft, prompt(0), Linear(), 4, controller=HistoryController(DynaTree()))


def test_zero_new_tokens_runs_nothing(pair):
    target, draft = pair
    handle = _no_forward(target)
    try:
        assert generate(target, draft, prompt(0), DynaTree(), 0).new_tokens == []
    finally:
        handle.remove()


class _IgnoresPositions(torch.nn.Module):
    """Wraps a model but drops position_ids: trees would be verified at BFS positions."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.config = inner, inner.config

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                **kwargs):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                          past_key_values=past_key_values, **kwargs)

    def get_output_embeddings(self):
        return self.inner.get_output_embeddings()

    device = property(lambda self: self.inner.device)
    dtype = property(lambda self: self.inner.dtype)


class _IgnoresMask(_IgnoresPositions):
    """Wraps a model but drops the 4D tree mask: siblings would see each other."""

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                **kwargs):
        return self.inner(input_ids=input_ids, position_ids=position_ids,
                          past_key_values=past_key_values, **kwargs)


def test_models_that_ignore_the_tree_mask_are_refused():
    # (sliding windows are checked against the context: tests/test_contract.py)
    with pytest.raises(UnsupportedModelError, match="different logits for a token tree"):
        check_tree_attention(_IgnoresMask(build_target("llama")))


def test_models_that_cannot_verify_trees_are_refused():
    broken = _IgnoresPositions(build_target("llama"))
    with pytest.raises(UnsupportedModelError, match="different logits for a token tree"):
        check_tree_attention(broken)
    flash = build_target("neox")
    flash.config._attn_implementation = "flash_attention_2"
    with pytest.raises(UnsupportedModelError, match="sdpa"):
        check_tree_attention(flash)


def test_an_untested_torch_is_a_clear_error(monkeypatch):
    from dynatree_lib.core.compat import check_torch_version

    for version in ("2.11.0+cu126", "2.13.0", "2.13.1+cpu"):
        check_torch_version(version)
    for version in ("2.10.0", "2.14.0.dev20260101", "3.0.0"):
        with pytest.raises(ImportError, match=r"tested with torch 2\.11 to 2\.13.*DYNATREE_ANY_TORCH"):
            check_torch_version(version)
    monkeypatch.setenv("DYNATREE_ANY_TORCH", "1")
    check_torch_version("2.14.0")


def test_the_old_threshold_names_still_work_with_a_warning():
    """τ is tokens per forward; the confidence thresholds are θ. The old keywords still work."""
    with pytest.warns(DeprecationWarning, match="theta_high"):
        old = DynaTree(tau_high=0.8, tau_low=0.3, tau_gain=0.2)
    assert old == DynaTree(theta_high=0.8, theta_low=0.3, theta_gain=0.2)
    with pytest.warns(DeprecationWarning, match="theta_low"):
        assert old.tau_low == 0.3
    with pytest.warns(DeprecationWarning):
        assert dataclasses.replace(old, tau_high=0.7).theta_high == 0.7
    from dynatree_lib.core.results import GenerationStats

    stats = GenerationStats(theta_high=[0.9, 0.8])
    with pytest.warns(DeprecationWarning, match="theta_high"):
        assert stats.tau_high == [0.9, 0.8]

"""oneDNN weight packing (CPU fast path): same computation, same greedy output, tree checks still hold."""

from __future__ import annotations

import pytest
import torch
from tiny_models import build_target, hf_greedy, noisy_copy, prompt
from torch import nn

from dynatree_lib import Autoregressive, DynaTree, FixedTree, Linear, generate, tree_logits_error
from dynatree_lib.core.tree import TokenTree
from dynatree_lib.models.packing import PackedLinear, pack_linear_weights, packing_available

pytestmark = pytest.mark.skipif(not packing_available(nn.Linear(2, 2)), reason="no oneDNN in this build")


@pytest.fixture(scope="module", params=["llama", "neox"])
def packed_pair(request):
    target = build_target(request.param)
    draft = noisy_copy(target, 0.02)
    reference = build_target(request.param)
    assert pack_linear_weights(target) > 0 and pack_linear_weights(draft) > 0
    return target, draft, reference


def test_every_linear_is_packed_and_logits_agree(packed_pair):
    target, _, reference = packed_pair
    assert not any(type(m) is nn.Linear for m in target.modules())
    assert any(isinstance(m, PackedLinear) for m in target.modules())
    ids = prompt(3, length=20)
    with torch.no_grad():
        got, want = target(ids).logits, reference(ids).logits
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", [Autoregressive(), Linear(k=4), FixedTree(), DynaTree()], ids=repr)
def test_packed_models_stay_exact(packed_pair, method):
    target, draft, _ = packed_pair
    for seed in range(3):
        ids = prompt(seed, length=5 + 4 * seed)
        result = generate(target, draft, ids, method, 32, eos_token_id=[])
        assert result.new_tokens == hf_greedy(target, ids, 32)


def test_per_node_logits_still_match_the_sequential_path(packed_pair):
    target, _, _ = packed_pair
    tree = TokenTree.from_parents([5, 7, 9, 11, 13, 2], [-1, 0, 0, 1, 1, 2], device="cpu")
    assert tree_logits_error(target, prompt(4, length=10), tree).max() < 1e-4


def test_packing_is_idempotent_and_skips_what_it_cannot_pack():
    model = build_target("llama")
    assert pack_linear_weights(model) > 0
    assert pack_linear_weights(model) == 0  # already packed
    assert pack_linear_weights(build_target("llama").double()) == 0  # float64: left as is
    assert not packing_available(nn.Sequential())  # no parameters

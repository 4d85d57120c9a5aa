"""The host-read counter (harness/host_reads.py) counts what waits for a device, once each."""

from __future__ import annotations

import pytest
import torch
from tiny_models import build_target, hf_greedy, noisy_copy, prompt

from dynatree_lib import Autoregressive, DynaTree, FixedTree, Linear, generate
from dynatree_lib.harness.host_reads import READ_BUDGET, HostReads, reads_per_iteration
from dynatree_lib.models.feature_head import FeatureDrafter, build_head


def test_each_kind_of_read_counts_once_and_plain_math_not_at_all():
    x = torch.arange(6.0)
    with HostReads() as reads:
        y = (x * 2 + 1).sum()             # no read
        x[x > 2]                          # boolean index: data-dependent shape
        x.nonzero()
        torch.nonzero(x)
        float(y), int(y), bool(y), y.item()
        x.tolist()
        torch.where(x > 2)                # the one-argument form is nonzero
        torch.where(x > 2, x, 0.0)        # the three-argument form is not
        x[x > 4] = 0.0                    # a masked assignment finds its indices first
        x.masked_fill(x > 4, 0.0)         # masked_fill does not
    assert reads.by_kind == {"boolean index": 1, "nonzero": 2, "float": 1, "int": 1, "bool": 1, "item": 1,
                             "tolist": 1, "where": 1, "boolean assignment": 1}
    assert torch.Tensor.item is not None and reads.total == 10
    with HostReads() as after:            # the patch is undone: a new counter starts from zero
        pass
    assert after.total == 0


def test_autoregressive_decoding_reads_one_token_per_step_and_counts_repeat():
    target = build_target("llama")
    draft = noisy_copy(target, 0.005)
    ids = prompt(3)
    ar = reads_per_iteration(lambda: generate(target, None, ids, Autoregressive(), 24, eos_token_id=[]))
    assert 1 <= ar["per_iteration"] < 2 and ar["by_kind"] == {"int": ar["reads"]}
    generate(target, draft, ids, DynaTree(), 4)   # the once-per-model probes read; not counted below
    twice = [reads_per_iteration(lambda: generate(target, draft, ids, DynaTree(), 24, eos_token_id=[]))
             for _ in range(2)]
    assert twice[0] == twice[1] and twice[0]["reads"] > 0   # a property of the code, not of timing


DEEP = [Linear(k=8), FixedTree(depth=6, branch=2, threshold=0.001),
        DynaTree(rho_stop=0.01, rho_deep=0.05), DynaTree(base_depth=2, lookup=6)]


@pytest.fixture(scope="module")
def agreeing_pair():
    target = build_target("llama")
    return target, noisy_copy(target, 0.005)


@pytest.mark.parametrize("method", DEEP, ids=repr)
def test_a_greedy_iteration_reads_the_device_at_most_three_times_at_any_depth(agreeing_pair, method):
    target, draft = agreeing_pair
    ids = prompt(3)
    out = {}
    counted = reads_per_iteration(lambda: out.setdefault("r", generate(target, draft, ids, method, 48,
                                                                       eos_token_id=[])))
    stats = out["r"].stats
    assert max(stats.drafted_depth) >= 4   # deep trees: the count does not grow with depth
    assert counted["iterations"] == stats.iterations and counted["most_per_iteration"] <= READ_BUDGET
    assert out["r"].new_tokens == hf_greedy(target, ids, 48, eos_token_id=[])


@pytest.mark.parametrize("method", [Linear(k=6), DynaTree(rho_stop=0.001, rho_deep=0.002)], ids=repr)
def test_the_feature_head_reads_no_more(method):
    target = build_target("llama")
    drafter = FeatureDrafter(build_head(target, torch.arange(64)).eval(), target)
    out = {}
    counted = reads_per_iteration(lambda: out.setdefault("r", generate(target, drafter, prompt(4), method, 32,
                                                                       eos_token_id=[])))
    assert max(out["r"].stats.drafted_depth) >= 3 and counted["most_per_iteration"] <= READ_BUDGET


def test_host_decisions_go_to_a_cuda_device_queued_from_pinned_memory(monkeypatch):
    from dynatree_lib.core.transfer import to_device

    assert to_device([3, 1, 2], "cpu").tolist() == [3, 1, 2] and to_device([], "cpu").dtype == torch.long
    calls = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: calls.append("pinned") or self)
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: calls.append((a, k)) or self)
    to_device([1, 2], "cuda:0")   # no GPU needed: the copy is only recorded
    assert calls == ["pinned", (("cuda:0",), {"non_blocking": True})]

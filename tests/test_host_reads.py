"""The host-read counter (harness/host_reads.py) counts what waits for a device, once each."""

from __future__ import annotations

import torch
from tiny_models import build_target, noisy_copy, prompt

from dynatree_lib import Autoregressive, DynaTree, generate
from dynatree_lib.harness.host_reads import HostReads, reads_per_iteration


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
    assert reads.by_kind == {"boolean index": 1, "nonzero": 2, "float": 1, "int": 1, "bool": 1, "item": 1,
                             "tolist": 1, "where": 1}
    assert torch.Tensor.item is not None and reads.total == 9
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

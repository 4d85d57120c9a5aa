"""The exactness contract, item by item (README "What is guaranteed").

(a) generation_config settings that change greedy tokens are applied as HF applies them,
    or refused by name; (b) prompt ids the draft cannot embed; (c) statistics stop where
    the output stops; (d) lookup nodes are counted apart from drafted depth; (e) the mask
    probe is keyed on dtype and attention implementation; (f) sliding windows are checked
    against what the cache must hold; (g) half-precision verdicts; (h) the loop asks of a
    drafter only what the Drafter protocol declares, and the method table drives it.
"""

from __future__ import annotations

import copy

import pytest
import torch
from tiny_models import VOCAB, ProtocolOnly, build_target, hf_greedy, noisy_copy, prompt
from transformers import MistralConfig, MistralForCausalLM

import dynatree_lib.core.compat as compat
import dynatree_lib.core.verify as verify
from dynatree_lib import (
    Autoregressive,
    DynaTree,
    FixedTree,
    HistoryController,
    Linear,
    UnsupportedModelError,
    check_tree_attention,
    compare_with_autoregressive,
    generate,
)
from dynatree_lib.core.processors import UnsupportedGenerationConfigError
from dynatree_lib.harness.exactness import classify_divergence, near_tie_bound

METHODS = [Autoregressive(), Linear(k=4), FixedTree(depth=4, branch=2, threshold=0.01), DynaTree()]


# ---- (a) generation_config -------------------------------------------------------------------

def _hf(target, ids, n, **settings):
    out = target.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=n,
                          pad_token_id=0, **settings)
    return out[0, ids.shape[1]:].tolist()


SETTINGS = [
    {"repetition_penalty": 1.5},
    {"repetition_penalty": 0.7},
    {"no_repeat_ngram_size": 2},
    {"suppress_tokens": [5, 17, 33]},
    {"begin_suppress_tokens": [3, 8]},
    {"sequence_bias": [[[7], 3.0], [[11, 12], -2.0]]},
    {"exponential_decay_length_penalty": (4, 1.2)},
    {"renormalize_logits": True},
]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(s))
@pytest.mark.parametrize("method", METHODS, ids=repr)
def test_generation_config_processors_match_hf_greedy(pair, settings, method):
    target, draft = pair
    saved = copy.deepcopy(target.generation_config)
    try:
        for seed in range(2):
            ids = prompt(40 + seed, length=10)
            eos = hf_greedy(target, ids, 24)[15]  # some settings act on EOS: give them one
            for key, value in settings.items():
                setattr(target.generation_config, key, value)
            want = _hf(target, ids, 24, eos_token_id=eos)
            assert generate(target, draft, ids, method, 24, eos_token_id=eos).new_tokens == want
            target.generation_config = copy.deepcopy(saved)
    finally:
        target.generation_config = saved


def test_bad_words_and_minimum_length_match_hf_greedy(pair):
    target, draft = pair
    ids = prompt(50, length=10)
    free = hf_greedy(target, ids, 24)
    saved = copy.deepcopy(target.generation_config)
    try:
        eos = free[3]  # a token the target emits early: a minimum length must hold it back
        target.generation_config.bad_words_ids = [[free[6]], [free[1], free[2]]]
        target.generation_config.min_new_tokens = 12
        want = _hf(target, ids, 24, eos_token_id=eos)
        for method in METHODS:
            got = generate(target, draft, ids, method, 24, eos_token_id=eos).new_tokens
            assert got == want, method
        assert want != free[: len(want)]
    finally:
        target.generation_config = saved


@pytest.mark.parametrize("key, value", [("num_beams", 2), ("stop_strings", ["x"]),
                                        ("guidance_scale", 1.5), ("max_time", 3.0),
                                        ("penalty_alpha", 0.6), ("num_return_sequences", 2)])
def test_settings_that_cannot_be_reproduced_are_refused_by_name(pair, key, value):
    target, draft = pair
    saved = copy.deepcopy(target.generation_config)
    setattr(target.generation_config, key, value)
    try:
        for method in (Autoregressive(), DynaTree()):
            with pytest.raises(UnsupportedGenerationConfigError, match=key):
                generate(target, draft, prompt(0), method, 4)
    finally:
        target.generation_config = saved


def test_sampling_settings_do_not_change_greedy_output(pair):
    target, draft = pair
    saved = copy.deepcopy(target.generation_config)
    try:
        target.generation_config.do_sample = True
        target.generation_config.temperature = 0.3
        target.generation_config.top_k = 5
        ids = prompt(9)
        want = hf_greedy(target, ids, 20)
        assert generate(target, draft, ids, DynaTree(), 20, eos_token_id=[]).new_tokens == want
    finally:
        target.generation_config = saved


# ---- (b) prompt ids the draft cannot embed ---------------------------------------------------

def test_ids_beyond_the_draft_vocabulary_are_handled():
    target = build_target("llama")
    target.resize_token_embeddings(VOCAB + 32)  # the target knows ids the draft lacks
    draft = build_target("llama", seed=3)
    ids = torch.tensor([[1, 2, VOCAB + 5, 7, VOCAB + 20, 3, 9]])
    want = generate(target, None, ids, Autoregressive(), 24, eos_token_id=[]).new_tokens
    for method in METHODS[1:]:
        got = generate(target, draft, ids, method, 24, eos_token_id=[], allow_vocab_padding=True)
        assert got.new_tokens == want


# ---- (c) statistics stop where the output stops ---------------------------------------------

@pytest.mark.parametrize("method", METHODS[1:], ids=repr)
def test_statistics_and_traces_stop_at_eos(pair, method):
    target, draft = pair
    for seed in range(6):
        ids = prompt(60 + seed)
        free = generate(target, draft, ids, method, 40, eos_token_id=[]).new_tokens
        for cut in (5, 11, 17):
            result = generate(target, draft, ids, method, 40, eos_token_id=free[cut], trace=True)
            s, n = result.stats, len(result.new_tokens)
            assert result.new_tokens == free[: free.index(free[cut]) + 1]
            assert 1 + sum(s.committed) == n  # the prefill's token, then every iteration's
            assert sum(len(t.committed) for t in result.trace) == n - 1
            assert all(a <= c <= a + 1 for a, c in zip(s.accepted, s.committed, strict=True))
            assert all(len(t.accepted_path) - 1 == a for t, a in zip(result.trace, s.accepted, strict=True))


@pytest.mark.parametrize("method", METHODS, ids=repr)
def test_progress_is_reported_after_every_target_forward(pair, method):
    target, draft = pair
    seen: list[int] = []
    result = generate(target, draft, prompt(3), method, 20, eos_token_id=[], progress=seen.append)
    assert len(seen) == result.stats.target_forwards  # the prefill, then one per iteration
    assert seen == sorted(seen) and seen[0] == 1 and seen[-1] == len(result.new_tokens) == 20


# ---- (d) lookup nodes apart from drafted depth ------------------------------------------------

def test_lookup_nodes_are_not_drafted_depth_and_the_controller_sees_the_draft_only():
    target = build_target("neox")  # its greedy text repeats the prompt often enough for lookup
    draft = noisy_copy(target, 0.02)
    method = DynaTree(max_depth=1, base_depth=1, lookup=10)
    beyond_draft = False
    for seed in range(4):
        base = prompt(seed, length=8)
        ids = torch.cat([base, base, base, base[:, :4]], dim=1)
        controller = HistoryController(method)
        fed: list[tuple[int, int]] = []
        update = controller.update
        controller.update = lambda a, d, fed=fed, update=update: (fed.append((a, d)), update(a, d))[1]
        result = generate(target, draft, ids, method, 48, eos_token_id=[], controller=controller)
        s = result.stats
        assert result.new_tokens == hf_greedy(target, ids, 48)
        assert max(s.drafted_depth) <= 1 and max(s.lookup_nodes) > 0
        assert all(d <= a for d, a in zip(s.accepted_drafted, s.accepted, strict=True))
        assert all(a <= d for a, d in zip(s.accepted_drafted, s.drafted_depth, strict=True))
        assert 0 <= s.acceptance_rate <= 1
        assert fed == list(zip(s.accepted_drafted, s.drafted_depth, strict=True))
        assert all(g <= a for g, a in zip(s.accepted_lookup, s.accepted, strict=True))
        sources = zip(s.accepted, s.accepted_drafted, s.accepted_lookup, strict=True)
        assert all(a <= d + g for a, d, g in sources)   # every accepted token had a source
        beyond_draft |= max(s.accepted) > 1  # a lookup chain carried the path past the drafted depth
    assert beyond_draft


# ---- (e) the mask probe is keyed on what it depends on ----------------------------------------

def test_mask_probe_reruns_after_a_dtype_or_attention_change(monkeypatch):
    model = build_target("llama")
    calls = []
    real = compat._probe_tree_attention
    monkeypatch.setattr(compat, "_probe_tree_attention", lambda m, n: (calls.append(m.dtype), real(m, n)))
    check_tree_attention(model)
    check_tree_attention(model)
    assert calls == [torch.float32]
    model.to(torch.bfloat16)
    check_tree_attention(model)
    assert calls == [torch.float32, torch.bfloat16]
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(UnsupportedModelError, match="ignores 4D tree masks"):
        check_tree_attention(model)


# ---- (f) sliding windows ---------------------------------------------------------------------

def _mistral(window: int):
    torch.manual_seed(0)
    config = MistralConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                           sliding_window=window, initializer_range=0.5, eos_token_id=None)
    return MistralForCausalLM(config).eval()


def test_sliding_window_models_run_when_the_cache_fits_in_the_window():
    target = _mistral(window=128)
    draft = noisy_copy(target, 0.02)
    for seed in range(3):
        ids = prompt(70 + seed, length=10)
        want = hf_greedy(target, ids, 40)
        for method in (Linear(k=4), FixedTree(depth=4, branch=2, threshold=0.01, max_nodes=24),
                       DynaTree(max_nodes=24, lookup=4)):
            assert generate(target, draft, ids, method, 40, eos_token_id=[]).new_tokens == want


def test_sliding_window_refusal_counts_the_whole_tree():
    target = _mistral(window=128)
    draft = noisy_copy(target, 0.02)
    ids = prompt(70, length=10)
    # prompt 10 + 40 new - 1 + (max_nodes + 1) = 49 + 85 > 127: the tree, not its depth
    with pytest.raises(UnsupportedModelError, match="sliding attention window of 128"):
        generate(target, draft, ids, DynaTree(max_nodes=84, lookup=10), 40, eos_token_id=[])
    with pytest.raises(UnsupportedModelError, match="max_nodes"):
        generate(target, draft, ids, FixedTree(max_nodes=100), 40, eos_token_id=[])
    assert len(generate(target, None, ids, Autoregressive(), 200, eos_token_id=[]).new_tokens) == 200


# ---- (g) half precision: identical, near-tie or mismatch -------------------------------------

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_verdicts_are_never_mismatches(dtype):
    target = build_target("llama").to(dtype)
    draft = noisy_copy(build_target("llama"), 0.02).to(dtype)
    verdicts = []
    for seed in range(6):
        for method in (Linear(k=4), DynaTree()):
            report = compare_with_autoregressive(target, draft, prompt(80 + seed), method, 32,
                                                 eos_token_id=[])
            verdicts.append(report.verdict)
            assert report.verdict in ("identical", "near-tie"), str(report)
            if report.verdict == "near-tie":
                d = report.divergence
                assert d.margin <= d.bound and "near-tie bound" in str(report)
    assert "identical" in verdicts


def test_a_real_bug_is_a_mismatch_even_in_bfloat16(monkeypatch):
    target = build_target("llama").to(torch.bfloat16)
    draft = noisy_copy(build_target("llama"), 0.02).to(torch.bfloat16)
    import dynatree_lib.core.decode as decode

    real = decode.verify_tree

    def wrong_positions(target, cache, tree, prefix_len, *args, **kwargs):  # the published bug: BFS positions
        positions = (prefix_len + torch.arange(tree.size)).unsqueeze(0)
        logits = verify.tree_logits(target, cache, tree, prefix_len, position_ids=positions)
        return verify.Verification(next_tokens=logits.argmax(-1))

    monkeypatch.setattr(decode, "verify_tree", wrong_positions)
    verdicts = {compare_with_autoregressive(target, draft, prompt(90 + s), FixedTree(4, 3, 0.01), 32,
                                            eos_token_id=[]).verdict for s in range(4)}
    monkeypatch.setattr(decode, "verify_tree", real)
    assert "mismatch" in verdicts


def test_a_three_way_tie_is_a_near_tie_and_a_far_token_is_not(monkeypatch):
    """bfloat16 on a CPU (Spec-Bench): three tokens within one rounding step of each other; the
    method's token was the judge's third. Both tokens close to the top logit: a near-tie."""
    import dynatree_lib.harness.exactness as exactness

    vocab = 8
    logits = torch.full((vocab,), -5.0, dtype=torch.bfloat16)
    logits[[1, 2, 3]] = torch.tensor([13.25, 13.25, 13.125], dtype=torch.bfloat16)

    class Judge(torch.nn.Module):
        dtype = torch.bfloat16
        device = torch.device("cpu")

        def forward(self, ids):
            from types import SimpleNamespace
            return SimpleNamespace(logits=logits.expand(1, ids.shape[1], vocab))

    judge, ids = Judge(), torch.tensor([[0, 0]])
    d = exactness.classify_divergence(judge, ids, [5, 1, 4], [5, 3, 4])
    assert d.verdict == "near-tie" and d.margin == pytest.approx(0.125) and d.margin <= d.bound
    far = exactness.classify_divergence(judge, ids, [5, 1, 4], [5, 0, 4])  # 18 below the top
    assert far.verdict == "mismatch" and far.margin > far.bound


def test_near_tie_bound_is_relative_to_the_logit_magnitude():
    assert near_tie_bound(20.0, torch.bfloat16) == pytest.approx(8 * 2**-7 * 20)
    assert near_tie_bound(40.0, torch.bfloat16) == 2 * near_tie_bound(20.0, torch.bfloat16)
    assert near_tie_bound(20.0, torch.float32) < 1e-4
    assert near_tie_bound(0.1, torch.float16) == near_tie_bound(1.0, torch.float16)


def test_classify_divergence_reads_the_reference_margin(pair):
    target, _ = pair
    ids = prompt(5)
    reference = hf_greedy(target, ids, 8)
    assert classify_divergence(target, ids, reference, list(reference)) is None
    logits = target(torch.cat([ids, torch.tensor([reference[:3]])], dim=1)).logits[0, -1]
    second = int(logits.topk(2).indices[1])
    flipped = reference[:3] + [second] + reference[4:]
    d = classify_divergence(target, ids, reference, flipped)
    assert d.index == 3 and d.method_token == second and d.margin > 0
    assert d.verdict == ("near-tie" if d.margin <= d.bound else "mismatch")
    assert d.verdict == "mismatch"  # float32: rounding cannot explain a real margin
    assert classify_divergence(target, ids, reference, reference[:5]).verdict == "mismatch"


# ---- (h) seams: the drafter protocol and the table of methods ---------------------------------

@pytest.mark.parametrize("method", METHODS[1:] + [DynaTree(lookup=4)], ids=repr)
def test_the_loop_needs_only_the_drafter_protocol(method):
    target = build_target("llama")
    draft = noisy_copy(target, 0.02)
    ids = prompt(120, length=8)
    result = generate(target, ProtocolOnly(draft), ids, method, 24, eos_token_id=[])
    assert result.new_tokens == hf_greedy(target, ids, 24)
    sampled = generate(target, ProtocolOnly(draft), ids, DynaTree(), 8, eos_token_id=[], do_sample=True,
                       generator=torch.Generator().manual_seed(0))
    assert len(sampled.new_tokens) == 8


def test_a_method_registered_in_the_table_runs_without_touching_the_loop():
    """A new method is a config class plus a registered growth rule: a chain of two, here."""
    from dataclasses import dataclass

    from dynatree_lib.core.growth import METHODS as TABLE
    from dynatree_lib.core.growth import linear_rule, method_entry, register_method

    @dataclass(frozen=True)
    class Pairs:
        k: int = 2

    register_method("pairs", Pairs)(lambda method, controller, cap: linear_rule(Linear(k=2), None, cap))
    try:
        target = build_target("llama")
        ids = prompt(121, length=8)
        result = generate(target, noisy_copy(target, 0.02), ids, Pairs(), 20, eos_token_id=[])
        assert result.new_tokens == hf_greedy(target, ids, 20)
        assert max(result.stats.drafted_depth) == 2 and method_entry(Pairs()).name == "pairs"
    finally:
        del TABLE["pairs"]
    with pytest.raises(TypeError, match="method must be one of"):
        generate(target, None, ids, Pairs(), 4)


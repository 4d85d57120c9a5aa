"""The feature head behind the drafter interface: exact for every method, one target forward per
iteration (its states come from the verify forward), safe to save and load."""

from __future__ import annotations

import pytest
import torch
from tiny_models import ProtocolOnly, build_target, hf_greedy, prompt

from dynatree_lib import Autoregressive, DynaTree, FixedTree, Linear, generate
from dynatree_lib.models.feature_head import FeatureDrafter, build_head, load_head, save_head

METHODS = [Linear(k=4), FixedTree(depth=4, branch=2, threshold=0.01), DynaTree(), DynaTree(lookup=4)]


@pytest.fixture(scope="module")
def target_and_head():
    target = build_target("llama")
    head = build_head(target, torch.arange(64)).eval()  # a shortlist of 64 of the 96 ids
    return target, FeatureDrafter(head, target)


@pytest.mark.parametrize("method", METHODS, ids=repr)
def test_the_loop_needs_only_the_drafter_protocol_of_the_head(target_and_head, method):
    target, drafter = target_and_head
    ids = prompt(210, length=8)
    result = generate(target, ProtocolOnly(drafter), ids, method, 24, eos_token_id=[])
    assert result.new_tokens == hf_greedy(target, ids, 24)


@pytest.mark.parametrize("method", METHODS, ids=repr)
def test_feature_drafter_is_exact(target_and_head, method):
    target, drafter = target_and_head
    for seed in range(4):
        ids = prompt(200 + seed, length=6 + 2 * seed)
        result = generate(target, drafter, ids, method, 32, eos_token_id=[])
        assert result.new_tokens == hf_greedy(target, ids, 32)
        assert result.stats.target_forwards == result.stats.iterations + 1  # no extra target pass


def test_feature_drafter_states_match_a_fresh_feed(target_and_head):
    """After many iterations the head's cache equals feeding the committed text with verified states."""
    target, drafter = target_and_head
    ids = prompt(210, length=8)
    result = generate(target, drafter, ids, DynaTree(), 24, eos_token_id=[])
    full = torch.cat([ids[0], torch.tensor(result.new_tokens[:-1])])
    states = target(full.unsqueeze(0), output_hidden_states=True).hidden_states[-1][0]
    from transformers import DynamicCache

    cache = DynamicCache(config=drafter.head.config)
    positions = torch.arange(1, full.numel()).unsqueeze(0)
    drafter.head(states[:-1].unsqueeze(0), full[1:].unsqueeze(0), positions, None, cache)
    got = drafter.cache.layers[0].keys
    want = cache.layers[0].keys
    assert got.shape[2] <= want.shape[2]
    assert torch.allclose(got, want[:, :, : got.shape[2]], atol=1e-4)


def test_head_round_trip_is_safe_and_small(target_and_head, tmp_path):
    target, drafter = target_and_head
    path = tmp_path / "head.safetensors"
    save_head(drafter.head, path, {"steps": 0})
    assert path.read_bytes()[:8] != b"PK\x03\x04"  # safetensors, not a zip/pickle
    loaded = load_head(target, path)
    assert loaded.meta == {"steps": 0} and torch.equal(loaded.shortlist, drafter.head.shortlist)
    ids = prompt(220)
    a = generate(target, FeatureDrafter(loaded, target), ids, DynaTree(), 16, eos_token_id=[])
    assert a.new_tokens == generate(target, None, ids, Autoregressive(), 16, eos_token_id=[]).new_tokens


def test_head_refuses_another_target(target_and_head):
    _, drafter = target_and_head
    other = build_target("llama")
    other.config.hidden_size = 32
    with pytest.raises(ValueError, match="another target"):
        generate(other, drafter, prompt(0), DynaTree(), 4)


def test_training_levels_see_what_tree_nodes_see(target_and_head):
    """The unrolled training objective computes, at level l, exactly the state a depth-l node
    gets at run time (same inputs, same attention): training and decoding agree."""
    from dynatree_lib.core.tree import TokenTree
    from dynatree_lib.models.unrolled import unrolled_mask, unrolled_states

    target, drafter = target_and_head
    head = drafter.head
    tokens = prompt(230, length=12)
    states = target(tokens, output_hidden_states=True).hidden_states[-1]
    unrolled = unrolled_states(head, tokens, states, levels=3, grad=False)   # [1, 3, 11, H]
    p = 9                                                     # the depth-2 node t_9 under root t_7
    drafter.reset()
    drafter.observe(states[0, :7])
    drafter.begin(tokens[0, :8], prefix_len=7)                # root t_7 at position 7
    tree = TokenTree(tokens[0, 7], 4, tokens.device)
    child = tree.add(torch.tensor([0]), tokens[0, 8:9], torch.zeros(1))
    drafter.expand(tree, child, 7, 1)
    grandchild = tree.add(child, tokens[0, 9:10], torch.zeros(1))
    drafter.expand(tree, grandchild, 7, 2)
    assert torch.allclose(drafter.predicted[0], unrolled[0, 0, 6], atol=1e-5)       # level 0 at position 7
    assert torch.allclose(drafter.predicted[1], unrolled[0, 1, 7], atol=1e-5)       # level 1 at position 8
    assert torch.allclose(drafter.predicted[2], unrolled[0, 2, p - 1], atol=1e-5)   # level 2 at position 9
    mask = unrolled_mask(5, 3, "cpu")
    assert mask[2 * 5 + 4].nonzero().flatten().tolist() == [0, 1, 2, 5 + 3, 10 + 4]


def test_benchmark_runs_both_drafters_in_one_run(target_and_head):
    from tiny_models import noisy_copy

    from dynatree_lib.harness.bench import parse_methods, run_benchmark
    from dynatree_lib.models.pairs import ModelPair

    target, drafter = target_and_head
    pair = ModelPair(target, noisy_copy(target, 0.02), None, "tiny", target.device, target.dtype,
                     drafters={"head": drafter}, default_drafter="head")
    methods = parse_methods("hf-assisted,dynatree@model,dynatree@head,linear,fixed:depth=3:branch=2:"
                            "threshold=0.05@head")
    doc = run_benchmark(pair, [prompt(s).tolist()[0] for s in range(2)], methods, 12, warmup=1,
                        progress=False)
    drafters = {r["method"]: r["drafter"] for r in doc["records"]}
    assert drafters == {"ar": None, "hf-assisted": None, "dynatree@model": "model", "dynatree@head": "head",
                        "linear": "head", "fixed D=3 B=2 t=0.05@head": "head"}
    assert all(r["verdict"] == "identical" for r in doc["records"])
    assert doc["pair"]["default_drafter"] == "head" and doc["pair"]["head"]


def test_train_head_until_is_checked_before_any_work():
    from dynatree_lib.train.head import main

    for bad in (["--until", "0"], ["--steps", "10", "--until", "11"]):
        with pytest.raises(SystemExit, match="--until must be in 1..--steps"):
            main(bad)


def test_train_head_init_from_is_checked_before_the_collection(tmp_path, monkeypatch):
    from dynatree_lib.train import head as train_head

    with pytest.raises(SystemExit, match="no such file"):
        train_head.main(["--init-from", str(tmp_path / "missing.safetensors")])
    export = tmp_path / "head.safetensors"
    export.write_bytes(b"")
    monkeypatch.setattr(train_head, "load_embedded_target", lambda: (torch.nn.Linear(1, 1), None))
    monkeypatch.setattr(train_head, "warm_start", lambda target, path, curve: (None, 2600, [], 0.0))

    def collect(*args):
        raise AssertionError("collected before the export's step was checked")

    monkeypatch.setattr(train_head, "collect", collect)
    with pytest.raises(SystemExit, match="exported at step 2600"):
        train_head.main(["--init-from", str(export), "--steps", "2600"])


def test_chat_share_draws_that_share_of_rows_from_the_chat_sources():
    from dynatree_lib.train.head import row_sampler

    sources = ["text", "continuation", "chat", "short-chat"]
    source = torch.tensor([0] * 80 + [1] * 10 + [2] * 5 + [3] * 5)
    generator = torch.Generator().manual_seed(0)
    rows = row_sampler(source, sources, 0.5)(4000, generator)
    chat = (source[rows] >= 2).float().mean().item()
    assert abs(chat - 0.5) < 0.03                       # uniform rows would give 0.10
    uniform = row_sampler(source, sources, None)(4000, generator)
    assert abs((source[uniform] >= 2).float().mean().item() - 0.10) < 0.03
    with pytest.raises(SystemExit, match="--chat-share"):
        row_sampler(source[:90], sources, 0.5)          # no chat rows to draw from
    with pytest.raises(SystemExit, match="--chat-share"):
        row_sampler(source, sources, 1.5)


def test_answer_mask_keeps_each_answer_through_its_first_eos():
    from dynatree_lib.train.head import answer_mask

    tokens = torch.tensor([[5, 5, 7, 9, 9, 9], [5, 5, 7, 7, 7, 7]])
    keep = answer_mask(tokens, prompt_len=2, eos=9)
    assert keep.tolist() == [[True, True, True, True, False, False], [True] * 6]


def test_warm_start_continues_an_exported_head(target_and_head, tmp_path):
    """--init-from: the exported head's weights (int8 round trip), shortlist and step, its curve up
    to that step, and only the stored parts trainable."""
    import json

    from dynatree_lib.train.head import warm_start

    target, drafter = target_and_head
    path, curve_file = tmp_path / "head.safetensors", tmp_path / "curve.json"
    save_head(drafter.head, path, {"seed": 0, "steps_done": 40})
    curve_file.write_text(json.dumps({"meta": {"seed": 0, "steps_done": 40}, "total_seconds": 60.0,
                                      "curve": [{"step": 0}, {"step": 20}, {"step": 40}]}))
    head, step, curve, seconds = warm_start(target, path, curve_file)
    assert step == 40 and [p["step"] for p in curve] == [0, 20, 40] and seconds == 60.0
    assert torch.equal(head.shortlist, drafter.head.shortlist)
    for name, value in drafter.head.trainable_state().items():
        assert torch.allclose(head.trainable_state()[name], value.float(), atol=0.02), name
    trainable = {name for name, p in head.named_parameters() if p.requires_grad}
    assert trainable == set(head.trainable_state()) and trainable
    curve_file.write_text(json.dumps({"meta": {"seed": 0, "steps_done": 99}, "curve": [{"step": 0}]}))
    assert warm_start(target, path, curve_file)[2:] == ([], 0.0)   # another run's is not continued


def test_chat_answer_agreement_scores_only_answers_and_padding_changes_nothing(target_and_head):
    """The held-out chat agreement scores the head on the target's own greedy answers: the batch
    holds prompt + greedy answer, the mask keeps exactly the answer tokens a tree drafts, and a
    right-padded batch scores each answer as it scores alone."""
    from dynatree_lib.harness.draft_quality import answer_agreement, chat_answers

    target, drafter = target_and_head
    prompts = [prompt(5, length=7)[0].tolist(), prompt(6, length=11)[0].tolist()]
    answers = chat_answers(target, prompts, max_new_tokens=9, eos_token_id=None)
    assert answers["tokens"].shape == (2, 20)
    for i, ids in enumerate(prompts):
        greedy = ids + hf_greedy(target, torch.tensor([ids]), 9)
        n = len(greedy)
        assert answers["tokens"][i, :n].tolist() == greedy
        assert answers["mask"][i].nonzero().flatten().tolist() == list(range(len(ids), n - 1))
    both = answer_agreement(drafter.head, answers, levels=2)
    alone = [answer_agreement(drafter.head, {k: v[i:i + 1] for k, v in answers.items()}, levels=2)
             for i in range(2)]
    weights = [[int(answers["mask"][i, 1 + d:].sum()) for d in range(2)] for i in range(2)]
    for d in range(2):
        expected = sum(alone[i][d] * weights[i][d] for i in range(2)) / sum(w[d] for w in weights)
        assert both[d] == pytest.approx(expected)

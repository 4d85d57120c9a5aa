"""train_draft bookkeeping: which chunks of the seeded order a draft has seen."""

from __future__ import annotations

import pytest

from dynatree_lib.harness.data import trained_ranges
from dynatree_lib.train.draft import main


def test_legacy_drafts_trained_on_the_first_labelled_chunks():
    # stages 1 and 2 stored only the count: 2,735 training chunks of 256 tokens after 48 held out
    assert trained_ranges({"labelled_tokens": 2735 * 256}) == [[0, 2783, 48]]


def test_recorded_ranges_win():
    meta = {"labelled_tokens": 1, "trained_ranges": [[0, 2783, 48], [2783, 4000, 64]]}
    assert trained_ranges(meta) == [[0, 2783, 48], [2783, 4000, 64]]


def test_first_chunk_out_of_range_is_a_clear_error(monkeypatch):
    import dynatree_lib.harness.data as data
    import dynatree_lib.train.draft as td

    class Tok:
        def __call__(self, text):
            return type("Enc", (), {"input_ids": list(range(len(text.split())))})()

    monkeypatch.setattr(td, "load_embedded_target", lambda: (None, Tok()))
    monkeypatch.setattr(data, "training_texts", lambda: ["a " * 1024])
    with pytest.raises(SystemExit, match="--first-chunk must be in"):
        main(["--first-chunk", "100", "--seq-len", "256"])


def test_greedy_continuations_are_the_targets_greedy_output_and_labelled_by_it(tmp_path):
    import torch
    from tiny_models import build_target, hf_greedy

    from dynatree_lib.train.draft import label_greedy_continuations

    target = build_target("llama")
    prompts = torch.randint(0, 96, (3, 5), generator=torch.Generator().manual_seed(0))
    labels = label_greedy_continuations(target, prompts, 7, 4, tmp_path / "on_policy.pt", batch=2)
    assert labels["done"] == 3 and labels["chunks"].shape == (3, 12)
    for row in range(3):
        ids = prompts[row:row + 1]
        assert labels["chunks"][row, 5:].tolist() == hf_greedy(target, ids, 7)
        # the stored top-1 at each position is the token the target wrote next
        assert labels["ids"][row, 4:-1, 0].tolist() == labels["chunks"][row, 5:].tolist()
        full = torch.log_softmax(target(labels["chunks"][row:row + 1].long()).logits[0], -1)
        assert torch.allclose(labels["logp"][row].float(), full.topk(4, -1).values, atol=2e-2)
    again = label_greedy_continuations(target, prompts, 7, 4, tmp_path / "on_policy.pt", batch=2)
    assert torch.equal(again["chunks"], labels["chunks"])  # read back from the cache


def test_a_tiny_run_with_on_policy_data_records_what_it_saw(tmp_path, monkeypatch):
    """The whole script, on a tiny random Llama and a word-level toy tokenizer."""
    import json

    import torch
    from tiny_models import build_target

    import dynatree_lib.harness.data as data
    import dynatree_lib.train.draft as td
    from dynatree_lib.models.embedded import load_draft_meta, load_embedded_draft

    class Tok:
        def __call__(self, text):
            return type("Enc", (), {"input_ids": [hash(w) % 90 + 3 for w in text.split()]})()

    target = build_target("llama")
    words = " ".join(f"w{i % 37} v{i % 11}" for i in range(3000))
    monkeypatch.setenv("DYNATREE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(td, "load_embedded_target", lambda: (target, Tok()))
    monkeypatch.setattr(data, "training_texts", lambda: [words, words[::-1]])
    monkeypatch.setattr(td, "wikitext_prompts", lambda split: [words[i * 50:] for i in range(20)])
    out, curve = tmp_path / "draft.pt", tmp_path / "curve.json"
    common = ["--on-policy-new-tokens", "0", "--seq-len", "16", "--shortlist", "32", "--layers", "0",
              "--heldout-chunks", "2", "--eval-every", "1", "--output", str(out), "--curve", str(curve)]
    td.main(["--label-tokens", "160", "--steps", "2", "--on-policy", "0", *common])
    td.main(["--label-tokens", "160", "--steps", "2", "--first-chunk", "12", "--on-policy", "8",
             "--init-from", str(out), *common])
    meta = load_draft_meta(out)
    assert meta["trained_ranges"] == [[0, 12, 2], [12, 24, 2]] and meta["on_policy_prompts"] == 8
    record = json.loads(curve.read_text())
    points = record["curve"]
    assert len(points) == 3 and all(0.0 <= p["on_policy_agreement"] <= 1.0 for p in points)
    assert record["label_cost"]["text_cached"] is False and record["label_cost"]["on_policy_cached"] is False
    td.main(["--label-tokens", "160", "--steps", "1", "--first-chunk", "12", "--on-policy", "8",
             "--init-from", str(out), *common])  # the same stage again: its labels come from the cache
    cost = json.loads(curve.read_text())["label_cost"]
    assert cost["text_cached"] and cost["on_policy_cached"] and cost["text_seconds"] >= 0.0
    draft = load_embedded_draft(target, out)
    assert draft.config.num_hidden_layers == 1
    assert draft.model.embed_tokens.weight is target.model.embed_tokens.weight
    # A stage of short continuations after long prompts: its own cache file, its own lengths.
    td.main(["--label-tokens", "160", "--steps", "1", "--on-policy", "8", "--init-from", str(out), *common,
             "--on-policy-new-tokens", "4"])
    written = torch.load(tmp_path / "cache" / "on-policy-16-16-8-seed0-new4.pt", weights_only=True)
    assert written["chunks"].shape == (8, 16)
    assert load_draft_meta(out)["on_policy_prompts"] == 24
    with pytest.raises(SystemExit, match="on-policy-new-tokens"):
        td.main([*common, "--on-policy-new-tokens", "16"])

"""The live page's graphs (dynatree_lib/web/export.py): what onnxruntime computes from the exported files is
what the PyTorch model computes, on a token tree over a cached prefix, and the integer weights
give the float weights back exactly."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from tiny_models import VOCAB, build_target, prompt
from transformers import DynamicCache

from dynatree_lib.core.tree import TokenTree
from dynatree_lib.core.verify import tree_logits

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
from dynatree_lib.web.export import PackedWeights, decode_source, exact_codes, export_step_graph, materialize  # noqa: E402


def q4_1(matrix: torch.Tensor, generator) -> torch.Tensor:
    """``matrix`` [N, K] made exactly representable as GGUF Q4_1 (float16 d and m per 32)."""
    n, k = matrix.shape
    blocks = matrix.reshape(n, k // 32, 32)
    low, high = blocks.amin(-1, keepdim=True).half(), blocks.amax(-1, keepdim=True)
    step = ((high - low.float()) / 15).half()
    codes = torch.randint(0, 16, blocks.shape, generator=generator)
    codes[..., 0], codes[..., 1] = 0, 15  # min and max codes present, as Q4_1 quantisation gives
    return (codes.float() * step.float() + low.float()).reshape(n, k)


def q8_0(matrix: torch.Tensor) -> torch.Tensor:
    n, k = matrix.shape
    blocks = matrix.reshape(n, k // 32, 32)
    scale = (blocks.abs().amax(-1, keepdim=True) / 127).half().float()
    return (torch.round(blocks / scale).clamp(-127, 127) * scale).reshape(n, k)


def test_exact_codes_recover_q4_1_q8_0_and_per_row_int8():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(64, 96, generator=g)
    row_scale = base.abs().amax(1, keepdim=True) / 127
    per_row = torch.round(base / row_scale) * row_scale
    packed = PackedWeights()
    for matrix, kind in ((q4_1(base, g), "q4"), (q8_0(base), "q8"), (per_row, "q8"), (base, "f32")):
        source = packed.sources[packed.add(matrix)]
        assert source["kind"] == kind
        assert torch.equal(decode_source(source, bytes(packed.data)), matrix), kind
    assert exact_codes(torch.randn(33, 8)) is None  # K not a multiple of the block
    assert packed.add(per_row.clone()) == 2, "identical matrices are stored once"


def _session(tmp_path, model, name):
    packed = PackedWeights()
    info = export_step_graph(model, tmp_path / f"{name}.onnx", packed)
    external = tmp_path / info["external"]["file"]
    external.write_bytes(materialize(info["external"], packed.sources, bytes(packed.data)))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(tmp_path / f"{name}.onnx"), options), info, packed


def _check_tree(session, info, model):
    """Prefill 7 tokens, then verify a 6-node tree over that cache, in ONNX and in PyTorch."""
    ids = prompt(3, length=7)
    layers, heads, dim = info["layers"], info["kv_heads"], info["head_dim"]
    causal = torch.full((7, 7), torch.finfo(torch.float32).min).triu(1)[None, None]
    empty = np.zeros((layers, heads, 0, dim), np.float32)
    logits, next_tokens, keys, values = session.run(None, {
        "input_ids": ids.numpy(), "position_ids": np.arange(7)[None], "attention_mask": causal.numpy(),
        "past_keys": empty, "past_values": empty})
    with torch.no_grad():
        reference = model(ids).logits[0]
    assert np.abs(logits[0] - reference.numpy()).max() < 1e-4
    assert keys.shape == (layers, heads, 7, dim)
    tree = TokenTree.from_parents([5, 9, 17, 9, 4, 30], [-1, 0, 0, 1, 1, 3], device="cpu")
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(ids[:, :6], past_key_values=cache, use_cache=True)
        want = tree_logits(model, cache, tree, 6)
    tree_ids = tree.tokens.unsqueeze(0).numpy()
    got, got_next, _, _ = session.run(None, {
        "input_ids": tree_ids, "position_ids": tree.position_ids(6).numpy(),
        "attention_mask": tree.attention_bias(6, torch.float32).numpy(),
        "past_keys": np.ascontiguousarray(keys[:, :, :6]),
        "past_values": np.ascontiguousarray(values[:, :, :6])})
    assert np.abs(got[0] - want.numpy()).max() < 1e-4
    assert (got_next[0] == want.argmax(-1).numpy()).all()


def test_exported_graph_verifies_a_tree_like_the_model(tmp_path):
    model = build_target("llama")
    session, info, packed = _session(tmp_path, model, "tiny")
    assert {s["kind"] for s in packed.sources} == {"f32"}  # random weights: no exact codes
    assert info["bytes"] < 200_000, "the big weights live outside the graph"
    _check_tree(session, info, model)


def test_integer_weights_give_the_models_logits(tmp_path):
    """Weights that are GGUF-quantised (Q4_1 layers, Q8_0 embedding, as the embedded target):
    the download is codes, the graph computes the float model's logits."""
    model = copy.deepcopy(build_target("llama"))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in model.model.layers:
            attn, mlp = layer.self_attn, layer.mlp
            for linear in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj,
                           mlp.down_proj):
                linear.weight.copy_(q4_1(linear.weight, g))
        model.model.embed_tokens.weight.copy_(q8_0(model.model.embed_tokens.weight))
    session, info, packed = _session(tmp_path, model, "tiny_q")
    kinds = [s["kind"] for s in packed.sources]
    # 14 Q4_1 layer matrices, the Q8_0 embedding, the (untied, random) output layer as float32
    assert sorted(kinds) == ["f32"] + ["q4"] * 14 + ["q8"], kinds
    assert len(packed.data) < 4 * sum(p.numel() for p in model.parameters()) / 3
    assert model.config.vocab_size == VOCAB
    _check_tree(session, info, model)


def test_embedded_pair_export_matches_pytorch_on_a_tree(tmp_path):
    """The graphs the site ships (export_web, cached like the site build's): with the weights the
    page rebuilds from weights.bin, the target's and the draft's logits on a tree equal PyTorch's."""
    from dynatree_lib.models.embedded import load_embedded_draft, load_embedded_target
    from dynatree_lib.web.export import export_web

    manifest = export_web(tmp_path / "live")
    packed = (tmp_path / "live" / "weights.bin").read_bytes()
    assert manifest["sources_kinds"]["f32"] == 0, "every big matrix is stored as integer codes"
    assert len(packed) < 130e6
    target, tokenizer = load_embedded_target()
    models = {"target": target, "draft": load_embedded_draft(target)}
    ids = torch.tensor([tokenizer.encode("The tree of life grows in every direction, and")])
    tree = TokenTree.from_parents([ids[0, -1].item(), 262, 253, 314, 28, 30], [-1, 0, 0, 1, 1, 2],
                                  device="cpu")
    for role, model in models.items():
        graph = manifest["graphs"][role]
        (tmp_path / "live" / graph["external"]["file"]).write_bytes(
            materialize(graph["external"], manifest["sources"], packed))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(tmp_path / "live" / graph["file"]), options)
        prefix = ids.shape[1] - 1
        causal = torch.full((prefix, prefix), torch.finfo(torch.float32).min).triu(1)[None, None]
        empty = np.zeros((graph["layers"], graph["kv_heads"], 0, graph["head_dim"]), np.float32)
        _, _, keys, values = session.run(None, {
            "input_ids": ids[:, :prefix].numpy(), "position_ids": np.arange(prefix)[None],
            "attention_mask": causal.numpy(), "past_keys": empty, "past_values": empty})
        got = session.run(["logits"], {
            "input_ids": tree.tokens.unsqueeze(0).numpy(), "position_ids": tree.position_ids(prefix).numpy(),
            "attention_mask": tree.attention_bias(prefix, torch.float32).numpy(),
            "past_keys": keys, "past_values": values})[0][0]
        cache = DynamicCache(config=model.config)
        with torch.no_grad():
            model(ids[:, :prefix], past_key_values=cache, use_cache=True)
            want = tree_logits(model, cache, tree, prefix)
        if role == "draft":
            want = want[:, torch.tensor(graph["shortlist"])]
        assert np.abs(got - want.numpy()).max() < 1e-3 * max(1.0, float(want.abs().max())), role
        assert (got.argmax(-1) == want.argmax(-1).numpy()).all(), role

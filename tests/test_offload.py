"""A target dispatched by accelerate (``device_map``, one layer offloaded to disk) decodes
unchanged and exactly: the path a target larger than one GPU takes (README "Targets larger
than one GPU"). On a GPU machine ``python -m dynatree_lib gpu-check`` runs a GPU + CPU split."""

from __future__ import annotations

import pytest
from tiny_models import build_target, hf_greedy, noisy_copy, prompt

from dynatree_lib import Autoregressive, DynaTree, FixedTree, Linear, generate

pytest.importorskip("accelerate")


def test_target_with_a_layer_offloaded_to_disk_is_exact(tmp_path):
    from transformers import AutoModelForCausalLM

    reference = build_target("llama")
    reference.save_pretrained(tmp_path / "target")
    device_map = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
                  "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"}
    target = AutoModelForCausalLM.from_pretrained(tmp_path / "target", device_map=device_map,
                                                  offload_folder=str(tmp_path / "offload")).eval()
    assert "disk" in set(target.hf_device_map.values())
    draft = noisy_copy(reference, 0.02)
    for seed in range(2):
        ids = prompt(30 + seed)
        want = hf_greedy(reference, ids, 24)
        for method in (Autoregressive(), Linear(k=4), FixedTree(depth=4, branch=2, threshold=0.01),
                       DynaTree()):
            assert generate(target, draft, ids, method, 24, eos_token_id=[]).new_tokens == want, method

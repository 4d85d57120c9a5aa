"""A target sharded over two processes (torchrun, gloo on the CPU, transformers' tensor-parallel
plan) with a replicated draft gives the unsharded target's own output on every rank, through
``load_pair`` and through the CLI (rank 0 alone prints)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_models import build_target, hf_greedy, noisy_copy, prompt

pytest.importorskip("torch.distributed.run")
pytestmark = pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="no gloo backend")
HERE = Path(__file__).resolve().parent


def _torchrun(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    return subprocess.run([*launch, *args], capture_output=True, text=True, timeout=timeout, cwd=HERE)


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    """A tiny Llama target (4 heads: shardable in two) and its noisy copy, saved with a
    word-level tokenizer (w0 ... w95) as hub folders."""
    from dynatree_lib.harness.sharded_check import save_pair

    folder = tmp_path_factory.mktemp("pair")
    target = build_target("llama")
    ids = prompt(5, length=10)
    save_pair(folder, target, noisy_copy(target, 0.02), ids[0].tolist())
    return folder, target, ids


def test_a_sharded_target_gives_the_unsharded_output_on_every_rank(tiny_pair):
    from dynatree_lib.harness.sharded_check import run_sharded_check

    folder, target, ids = tiny_pair
    result = run_sharded_check(folder, hf_greedy(target, ids, 24, eos_token_id=[]))
    assert result["passed"], result.get("error") or result
    assert result["shards"] == [2, 2] and result["identical_to_unsharded"]
    assert all(rank["packed"] is False for rank in result["ranks"])   # a sharded target is never packed


def test_the_cli_under_torchrun_speaks_on_rank_zero_only(tiny_pair):
    folder, target, ids = tiny_pair
    text = " ".join(f"w{i}" for i in ids[0].tolist())
    run = _torchrun("-m", "dynatree_lib", "generate", "--target", str(folder / "target"), "--draft",
                    str(folder / "draft"), "--prompt", text, "--max-new-tokens", "16", "--ignore-eos",
                    "--device", "cpu")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("method      DynaTree") == 1, run.stdout   # one rank printed
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder / "target")
    expected = text + tokenizer.decode(hf_greedy(target, ids, 16, eos_token_id=[]), skip_special_tokens=True)
    assert run.stdout.split("\n")[0] == expected

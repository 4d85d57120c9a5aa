"""A target sharded over the processes of a torchrun launch, checked against its unsharded self.

``torchrun --nproc_per_node N -m dynatree_lib.harness.sharded_check FOLDER`` loads
``FOLDER/target`` and ``FOLDER/draft`` through ``load_pair`` (which shards the target across
the launch) and writes ``FOLDER/rank<r>.json``: every method's greedy tokens on
``FOLDER/prompt.json``, a sampled run, and what the pair reports. :func:`run_sharded_check`
launches it and compares every rank with the unsharded target's own greedy output; the tests
run it on two gloo processes on the CPU, ``gpu-check`` on two GPUs with NCCL when it has them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

METHODS = ("dynatree", "fixed", "linear")


def _methods():
    from ..core.methods import DynaTree, FixedTree, Linear

    return {"dynatree": DynaTree(), "fixed": FixedTree(depth=4, branch=2, threshold=0.01),
            "linear": Linear(k=4)}


def worker(folder: Path, new_tokens: int = 24) -> None:
    """One rank's part: generate with every method, write ``rank<r>.json``."""
    from ..core.decode import generate
    from ..core.methods import DynaTree
    from ..models.pairs import load_pair

    pair = load_pair((str(folder / "target"), str(folder / "draft")))   # shards: torchrun's WORLD_SIZE
    ids = torch.tensor([json.loads((folder / "prompt.json").read_text())], device=pair.device)
    out = {name: generate(pair.target, pair.draft, ids, method, new_tokens, eos_token_id=[]).new_tokens
           for name, method in _methods().items()}
    generator = torch.Generator(device=pair.device).manual_seed(3)
    out["sampled"] = generate(pair.target, pair.draft, ids, DynaTree(), 16, eos_token_id=[], do_sample=True,
                              generator=generator).new_tokens
    out.update(shards=pair.shards, packed=pair.packed, device=str(pair.device))
    (folder / f"rank{torch.distributed.get_rank()}.json").write_text(json.dumps(out))


def save_pair(folder: Path, target, draft, prompt: list[int]) -> None:
    """Save a tiny pair as hub folders (``target``, ``draft``) with a word-level tokenizer
    (``w0`` ... ``w<V-1>``) and the prompt the check decodes."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(target.config.vocab_size)}
    words = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, unk_token="w0", pad_token="w0")
    for name, model in (("target", target), ("draft", draft)):
        model.save_pretrained(folder / name)
        tokenizer.save_pretrained(folder / name)
    (folder / "prompt.json").write_text(json.dumps(prompt))


def run_sharded_check(folder: Path, reference: list[int], processes: int = 2, timeout: int = 600) -> dict:
    """Launch :func:`worker` over ``processes`` with torchrun; compare each rank with ``reference``
    (the unsharded target's greedy tokens). Returns the verdict and each rank's record."""
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone",
              "--nproc_per_node", str(processes), "-m", "dynatree_lib.harness.sharded_check", str(folder)]
    run = subprocess.run(launch, capture_output=True, text=True, timeout=timeout)
    if run.returncode != 0:
        return {"processes": processes, "passed": False, "error": run.stderr[-2000:]}
    ranks = [json.loads((folder / f"rank{r}.json").read_text()) for r in range(processes)]
    exact = all(rank[name] == reference for rank in ranks for name in METHODS)
    same_samples = all(rank["sampled"] == ranks[0]["sampled"] for rank in ranks)
    return {"processes": processes, "shards": [rank["shards"] for rank in ranks],
            "devices": [rank["device"] for rank in ranks], "identical_to_unsharded": exact,
            "same_samples_on_every_rank": same_samples, "passed": exact and same_samples,
            "ranks": ranks}


if __name__ == "__main__":
    worker(Path(sys.argv[1]))

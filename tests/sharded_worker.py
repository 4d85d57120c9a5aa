"""Run by tests/test_sharded.py under torchrun: the library's own loading path with a target
sharded over the launch's processes, every method, one JSON file of tokens per rank."""

from __future__ import annotations

import json
import sys

import torch

from dynatree_lib import DynaTree, FixedTree, Linear, generate, load_pair

folder = sys.argv[1]
pair = load_pair((f"{folder}/target", f"{folder}/draft"), device="cpu")   # shards: torchrun's WORLD_SIZE
ids = torch.tensor([json.load(open(f"{folder}/prompt.json"))])
methods = {"dynatree": DynaTree(), "fixed": FixedTree(depth=4, branch=2, threshold=0.01),
           "linear": Linear(k=4)}
out = {name: generate(pair.target, pair.draft, ids, method, 24, eos_token_id=[]).new_tokens
       for name, method in methods.items()}
out["sampled"] = generate(pair.target, pair.draft, ids, DynaTree(), 16, eos_token_id=[], do_sample=True,
                          generator=torch.Generator().manual_seed(3)).new_tokens
out["shards"], out["packed"] = pair.shards, pair.packed
rank = torch.distributed.get_rank()
json.dump(out, open(f"{folder}/rank{rank}.json", "w"))

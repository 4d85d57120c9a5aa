"""dynatree_lib: exact greedy speculative decoding, from autoregressive to DynaTree.

    from dynatree_lib import load_pair, generate, DynaTree
    pair = load_pair()   # embedded pair on CPU, Pythia-2.8B/70M on CUDA; DYNATREE_PAIR overrides
    ids = pair.tokenizer("The tower is", return_tensors="pt").input_ids.to(pair.device)
    result = generate(pair.target, pair.draft, ids, method=DynaTree(), max_new_tokens=128)
"""

from .core.compat import UnsupportedModelError, check_torch_version, check_tree_attention
from .core.controller import HistoryController
from .core.decode import GenerationResult, GenerationStats, IterationTrace, generate
from .core.methods import Autoregressive, DynaTree, FixedTree, Linear, default_method
from .harness.data import prompt_set
from .harness.exactness import (
    ExactnessReport,
    compare_with_autoregressive,
    tree_logits_error,
    verdict,
    worst_verdict,
)
from .models.pairs import ModelPair, load_pair

check_torch_version()  # a clear error on an untested torch instead of an obscure one later

__all__ = [
    "load_pair", "ModelPair", "prompt_set",
    "generate", "default_method", "Autoregressive", "Linear", "FixedTree", "DynaTree", "HistoryController",
    "GenerationResult", "GenerationStats", "IterationTrace", "ExactnessReport",
    "compare_with_autoregressive", "tree_logits_error", "verdict", "worst_verdict", "UnsupportedModelError",
    "check_tree_attention",
]

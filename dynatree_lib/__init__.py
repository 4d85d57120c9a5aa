"""dynatree_lib: exact greedy speculative decoding, from autoregressive to DynaTree.

    from dynatree_lib import load_pair, generate, DynaTree
    pair = load_pair()   # embedded pair on CPU, Pythia-2.8B/70M on CUDA; DYNATREE_PAIR overrides
    ids = pair.tokenizer("The tower is", return_tensors="pt").input_ids.to(pair.device)
    result = generate(pair.target, pair.draft, ids, method=DynaTree(), max_new_tokens=128)
"""

from .adapt import HistoryController
from .data import prompt_set
from .decode import GenerationResult, GenerationStats, IterationTrace, generate
from .exactness import ExactnessReport, compare_with_autoregressive, tree_logits_error
from .methods import Autoregressive, DynaTree, FixedTree, Linear
from .models import ModelPair, load_pair
from .verify import UnsupportedModelError, check_tree_attention

__all__ = [
    "load_pair", "ModelPair", "prompt_set",
    "generate", "Autoregressive", "Linear", "FixedTree", "DynaTree", "HistoryController",
    "GenerationResult", "GenerationStats", "IterationTrace", "ExactnessReport",
    "compare_with_autoregressive", "tree_logits_error", "UnsupportedModelError",
    "check_tree_attention",
]

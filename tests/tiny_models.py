"""Tiny random models built in the tests (no downloads): a target and a noisy copy as draft."""

from __future__ import annotations

import copy

import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM

VOCAB = 96


def build_target(arch: str, seed: int = 0):
    torch.manual_seed(seed)
    common = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=256,
                  # a large init scale gives peaked distributions: no float near-ties, real acceptance
                  initializer_range=0.5)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(num_key_value_heads=2, **common))
    elif arch == "neox":
        model = GPTNeoXForCausalLM(GPTNeoXConfig(rotary_pct=0.5, **common))
    else:
        raise ValueError(arch)
    return model.eval()


def noisy_copy(model, noise: float, seed: int = 1):
    """A draft that agrees with the target often but not always."""
    draft = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in draft.parameters():
            p.add_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * noise)
    return draft


def hf_greedy(target, input_ids, max_new_tokens: int, eos_token_id=None) -> list[int]:
    """The reference: the target's own greedy generate."""
    out = target.generate(input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                          max_new_tokens=max_new_tokens,
                          eos_token_id=eos_token_id, pad_token_id=0)
    return out[0, input_ids.shape[1]:].tolist()


def prompt(seed: int, length: int = 12):
    return torch.randint(0, VOCAB, (1, length), generator=torch.Generator().manual_seed(seed), device="cpu")


class ProtocolOnly:
    """A drafter that shows the decoding loop the Drafter protocol's members and nothing else:
    any other attribute the loop asks for fails loudly."""

    def __init__(self, inner) -> None:
        from dynatree_lib.core.drafter import as_drafter

        object.__setattr__(self, "_inner", as_drafter(inner))

    def __getattr__(self, name: str):
        from dynatree_lib.core.drafter import DRAFTER_MEMBERS

        if name not in DRAFTER_MEMBERS:
            raise AttributeError(f"the loop used {name!r}, which is not in the Drafter protocol")
        return getattr(self._inner, name)

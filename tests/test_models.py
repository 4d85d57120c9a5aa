"""load_pair: presets, environment override and one-line errors (no network needed)."""

from __future__ import annotations

import pytest

import dynatree_lib.models.pairs as models


def test_load_pair_is_part_of_the_package_api():
    import dynatree_lib

    assert dynatree_lib.load_pair is models.load_pair
    assert dynatree_lib.ModelPair is models.ModelPair
    assert {"load_pair", "ModelPair"} <= set(dynatree_lib.__all__)


def test_unknown_pair_name():
    with pytest.raises(ValueError, match="unknown pair 'gpt5'"):
        models.load_pair("gpt5")


def test_environment_variable_overrides_the_default(monkeypatch):
    monkeypatch.setenv("DYNATREE_PAIR", "not-a-pair")
    with pytest.raises(ValueError, match="unknown pair 'not-a-pair'"):
        models.load_pair()


def test_unreachable_hub_names_the_embedded_preset(monkeypatch):
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(RuntimeError, match=r"unreachable.*load_pair\('embedded'\)"):
        models.load_pair("pythia")


def test_tokenizers_must_match():
    class Tok:
        def __init__(self, vocab):
            self.vocab = vocab

        def get_vocab(self):
            return self.vocab

    models.check_tokenizers(Tok({"a": 0}), Tok({"a": 0}))
    with pytest.raises(ValueError, match="tokenizers differ"):
        models.check_tokenizers(Tok({"a": 0}), Tok({"a": 1}))


def test_auto_dtype_reads_the_cpu_flags():
    from dynatree_lib.models.dtype_choice import native_bfloat16

    assert native_bfloat16("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx512vl\n")
    assert native_bfloat16("flags\t: fpu amx_bf16 amx_tile\n")
    assert not native_bfloat16("flags\t: fpu sse avx2 avx512f avx512_vnni\nbugs\t: avx512_bf16\n")
    assert not native_bfloat16("")


def test_auto_dtype_chooses_bfloat16_only_when_native_and_clearly_faster():
    import torch

    from dynatree_lib.models.dtype_choice import MARGIN, choose_dtype

    float32 = {1: 0.040, 8: 0.080}                                  # 120 ms for a step + 8 tokens
    faster = {1: 0.035, 8: 0.045}                                   # 80 ms: 0.67 of float32
    barely = {n: t * (1 - MARGIN / 2) for n, t in float32.items()}  # inside the margin
    slower = {1: 0.050, 8: 0.090}
    assert choose_dtype(False)[0] is torch.float32
    assert "no native bfloat16" in choose_dtype(False)[1]
    dtype, why = choose_dtype(True, {"float32": float32, "bfloat16": faster})
    assert dtype is torch.bfloat16 and "0.67" in why
    assert choose_dtype(True, {"float32": float32, "bfloat16": barely})[0] is torch.float32
    dtype, why = choose_dtype(True, {"float32": float32, "bfloat16": slower})
    assert dtype is torch.float32 and "1.17" in why
    with pytest.raises(ValueError, match="needs timings"):
        choose_dtype(True)


def test_auto_dtype_names_what_it_chose_and_refuses_other_strings(monkeypatch):
    import torch

    with pytest.raises(ValueError, match="torch.dtype or 'auto', got 'fast'"):
        models.load_pair("embedded", dtype="fast")
    # a hub pair on a CPU: 'auto' keeps its default dtype and says it measured nothing
    dtype, why = models._auto_dtype("auto", "pythia", "cpu", True)
    assert dtype is torch.float32 and "only the embedded pair on a CPU" in why
    monkeypatch.setattr("dynatree_lib.models.dtype_choice.native_bfloat16", lambda: False)
    dtype, why = models._auto_dtype("auto", "embedded", "cpu", True)
    assert dtype is torch.float32 and "no native bfloat16" in why


def test_auto_dtype_is_measured_once_per_machine(tmp_path):
    import torch

    from dynatree_lib.models.dtype_choice import machine_key, remembered

    calls = []

    def decide():
        calls.append(1)
        return torch.bfloat16, "bfloat16: measured"

    path = tmp_path / "dtype-auto.json"
    key = machine_key("model name\t: CPU X\nflags\t: avx512_bf16\n")
    assert key != machine_key("model name\t: CPU Y\nflags\t: avx512_bf16\n")
    assert remembered(path, key, decide) == (torch.bfloat16, "bfloat16: measured")
    dtype, why = remembered(path, key, decide)   # a second process reads the same verdict
    assert dtype is torch.bfloat16 and why.startswith("bfloat16: measured (measured once")
    assert len(calls) == 1

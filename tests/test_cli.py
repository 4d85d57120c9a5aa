"""The command line on locally saved tiny models with a character-level tokenizer."""

from __future__ import annotations

import pytest
from tiny_models import VOCAB, build_target, noisy_copy
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from dynatree_lib.cli import main


@pytest.fixture(scope="module")
def saved_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    chars = [chr(c) for c in range(32, 32 + VOCAB - 1)]
    vocab = {"<unk>": 0, **{ch: i + 1 for i, ch in enumerate(chars)}}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>")
    target = build_target("llama")
    paths = {}
    for name, model in (("target", target), ("draft", noisy_copy(target, 0.02))):
        paths[name] = str(root / name)
        model.save_pretrained(paths[name])
        tokenizer.save_pretrained(paths[name])
    return paths


def test_generate_prints_the_same_text_for_every_method(saved_pair, capsys):
    texts = {}
    for method in ("ar", "linear", "fixed", "dynatree"):
        main(["generate", "--target", saved_pair["target"], "--draft", saved_pair["draft"],
              "--method", method, "--prompt", "Hello tree", "--max-new-tokens", "24", "--ignore-eos"])
        out = capsys.readouterr().out
        assert "tau" in out and "target_forwards" in out
        texts[method] = out.split("\n\n")[0]
    assert texts["ar"].startswith("Hello tree") and len(set(texts.values())) == 1


def test_generate_samples_reproducibly(saved_pair, capsys):
    base = ["generate", "--target", saved_pair["target"], "--draft", saved_pair["draft"], "--method",
            "dynatree", "--prompt", "Hello tree", "--max-new-tokens", "16", "--ignore-eos",
            "--temperature", "0.8"]
    texts = []
    for seed in ("1", "1", "2"):
        main(base + ["--seed", seed])
        texts.append(capsys.readouterr().out.split("\n\n")[0])
    assert texts[0] == texts[1] != texts[2]  # same seed, same sample
    with pytest.raises(ValueError, match="temperature"):
        main(base[:-1] + ["0"])


def test_method_parameters_are_validated(saved_pair):
    base = ["generate", "--target", saved_pair["target"], "--draft", saved_pair["draft"],
            "--prompt", "x", "--method", "linear"]
    with pytest.raises(SystemExit, match="k must be >= 1"):
        main(base + ["--param", "k=0"])
    with pytest.raises(SystemExit, match="expected key=value"):
        main(base + ["--param", "depth=3"])


def test_compare_reports_exactness_for_every_method(saved_pair, capsys):
    main(["compare", "--target", saved_pair["target"], "--draft", saved_pair["draft"],
          "--prompt", "Hello tree", "--max-new-tokens", "16", "--ignore-eos", "--repeats", "1"])
    table = capsys.readouterr().out.split("\n\n")[1].splitlines()
    assert [line.split()[0] for line in table[1:]] == ["Autoregressive", "Linear", "FixedTree", "DynaTree"]
    assert all(line.split()[1] == "yes" for line in table[1:])


@pytest.mark.parametrize("command", [
    ["bench", "--methods", "ar,hf,linear,dynatree"],
    ["sweep", "fixed", "--depths", "2,3", "--branches", "2", "--thresholds", "0.05"],
    ["ablation"],
    ["scaling", "length", "--grid", "4,8"],
])
def test_benchmark_commands_write_valid_results(saved_pair, tmp_path, command, capsys):
    from dynatree_lib.harness.bench import read_results

    out = tmp_path / "r.json"
    main([*command, "--pair", f"{saved_pair['target']},{saved_pair['draft']}", "--num-prompts", "1",
          "--warmup", "1", "--max-new-tokens", "8", "--max-prompt-tokens", "40", "--output", str(out)])
    written = sorted(tmp_path.glob("*.json"))
    assert written and all(read_results(p)["aggregates"] for p in written)
    assert "wrote" in capsys.readouterr().out
    for path in written:
        assert all(a["identical_to_ar"] for a in read_results(path)["aggregates"].values())


def test_bfloat16_runs_are_named_apart_and_carry_verdicts(saved_pair, tmp_path, capsys):
    from dynatree_lib.harness.bench import read_results
    from dynatree_lib.harness.costs import read_costs

    pair = ["--pair", f"{saved_pair['target']},{saved_pair['draft']}", "--results-dir", str(tmp_path)]
    main(["bench", *pair, "--dtype", "bfloat16", "--methods", "ar,dynatree", "--num-prompts", "1",
          "--warmup", "1", "--max-new-tokens", "8", "--max-prompt-tokens", "40"])
    doc = read_results(next(tmp_path.glob("main_wikitext2_*_cpu_bfloat16.json")))
    assert doc["environment"]["dtype"] == "bfloat16"
    assert all(r["verdict"] in ("identical", "near-tie") for r in doc["records"])
    main(["costs", *pair, "--dtype", "bfloat16", "--sizes", "1,2", "--prefix-len", "8", "--repeats", "1"])
    costs = read_costs(next(tmp_path.glob("costs_*_cpu_bfloat16.json")))
    assert {"default", "bfloat16"} <= set(costs["curves"]["target"])  # one run, both dtypes
    assert costs["environment"]["dtype"] == "float32"
    main(["bench", *pair, "--dtype", "float32", "--methods", "ar", "--num-prompts", "1", "--warmup", "0",
          "--max-new-tokens", "4", "--max-prompt-tokens", "20"])
    assert len(list(tmp_path.glob("main_wikitext2_*_cpu.json"))) == 1  # the default dtype: no suffix


def test_costs_command_writes_both_curves(saved_pair, tmp_path, capsys):
    from dynatree_lib.harness.costs import read_costs

    out = tmp_path / "costs.json"
    main(["costs", "--pair", f"{saved_pair['target']},{saved_pair['draft']}", "--sizes", "1,2,4",
          "--prefix-len", "8", "--repeats", "1", "--output", str(out)])
    doc = read_costs(out)
    assert list(doc["curves"]["target"]["default"]) == ["1", "2", "4"]
    assert "x one-token step" in capsys.readouterr().out


def test_explorer_file_becomes_a_working_page_fragment(saved_pair, tmp_path, capsys):
    import json
    import math
    import re

    from dynatree_lib.book.viz import explorer_html
    from dynatree_lib.harness.bench import read_results
    from dynatree_lib.harness.explorer import GRID

    out = tmp_path / "explorer.json"
    main(["explore", "--pair", f"{saved_pair['target']},{saved_pair['draft']}", "--num-prompts", "1",
          "--warmup", "1", "--max-new-tokens", "8", "--max-prompt-tokens", "40", "--output", str(out)])
    doc = read_results(out)
    settings = math.prod(len(values) for values in GRID.values())
    assert len(doc["trees"]) == settings and all(doc["trees"].values())
    html = explorer_html(doc)
    data = json.loads(re.search(r"const data = (\{.*?\});\n", html).group(1))
    assert len(data["settings"]) == settings and all(s["trees"] for s in data["settings"].values())
    assert html.count('<select data-key="') == len(GRID) + 1 and "Plotly.react" in html


def test_export_tree_writes_a_static_tree(saved_pair, tmp_path, capsys):
    import ast
    import json

    out = tmp_path / "tree.json"
    main(["export-tree", "--pair", f"{saved_pair['target']},{saved_pair['draft']}", "--num-prompts", "2",
          "--max-new-tokens", "12", "--max-prompt-tokens", "40", "--output", str(out)])
    doc = json.loads(out.read_text())
    assert ast.literal_eval(doc["vllm_speculative_token_tree"]) == [tuple(p) for p in doc["shape"]]
    assert doc["command"].startswith("python -m dynatree_lib") and "environment" in doc
    assert "speculative_token_tree:" in capsys.readouterr().out

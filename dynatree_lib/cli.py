"""Command line: ``python -m dynatree_lib COMMAND``.

Commands: generate, compare, demo, draft-report, costs, gpu-check, bench, sweep, scaling, ablation,
explore.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from dataclasses import fields
from pathlib import Path

import torch

from .core.decode import generate
from .core.growth import method_entry
from .core.methods import Autoregressive, DynaTree, FixedTree, Linear, default_method
from .harness.runner import OUR_METHODS as METHODS  # name -> config class, from core's table of methods
from .models.sharding import is_writer, world

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16}


def build_method(name: str, params: list[str]):
    """``name`` in METHODS plus ``key=value`` overrides of its config fields."""
    cls = METHODS[name]
    known = {f.name: f.type for f in fields(cls)}
    values = {}
    for item in params:
        key, sep, raw = item.partition("=")
        if not sep or key not in known:
            raise SystemExit(f"--param {item!r}: expected key=value with key in {sorted(known) or 'none'}")
        default = getattr(cls(), key)
        if isinstance(default, bool):
            values[key] = raw.lower() in ("1", "true", "yes")
        else:
            values[key] = type(default)(raw)
    try:
        return cls(**values)
    except ValueError as error:
        raise SystemExit(f"invalid {name} parameters: {error}") from None


def _load(path: str, device: str, dtype: torch.dtype, shard: bool = False):
    """A model from a folder or the hub; ``shard``: tensor-parallel across torchrun's processes."""
    from transformers import AutoModelForCausalLM

    from .models.sharding import sharding_kwargs

    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa",
                                                 **(sharding_kwargs() if shard else {}))
    return (model if shard else model.to(device)).eval()


def cmd_generate(args: argparse.Namespace) -> None:
    from transformers import AutoTokenizer

    method = build_method(args.method, args.param)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = DTYPES[args.dtype]
    tokenizer = AutoTokenizer.from_pretrained(args.target)
    target = _load(args.target, device, dtype, shard=world()[1] > 1)
    draft = _load(args.draft or args.target, target.device, dtype) if method_entry(method).drafts else None
    ids = tokenizer(args.prompt, return_tensors="pt").input_ids
    eos = [] if args.ignore_eos else None
    sampling = _sampling(args)
    sample = {} if sampling is None else {"do_sample": True, **sampling,
                                          "generator": torch.Generator().manual_seed(args.seed)}
    result = generate(target, draft, ids, method, args.max_new_tokens, eos_token_id=eos, **sample)
    print(args.prompt + tokenizer.decode(result.new_tokens, skip_special_tokens=True))
    print()
    print(f"method      {method}")
    for key, value in result.stats.summary().items():
        print(f"{key:<16}{value:.4g}" if isinstance(value, float) else f"{key:<16}{value}")


def cmd_compare(args: argparse.Namespace) -> None:
    from transformers import AutoTokenizer

    from .harness.compare import compare_methods, format_comparison

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = DTYPES[args.dtype]
    tokenizer = AutoTokenizer.from_pretrained(args.target)
    target = _load(args.target, device, dtype, shard=world()[1] > 1)
    draft = _load(args.draft, target.device, dtype)
    ids = tokenizer(args.prompt, return_tensors="pt").input_ids
    methods = [build_method(name, []) for name in args.methods.split(",")]
    rows = compare_methods(target, draft, ids, methods, args.max_new_tokens, not args.ignore_eos,
                           args.repeats)
    print(args.prompt + tokenizer.decode(rows[0].new_tokens, skip_special_tokens=True))
    print()
    print(format_comparison(rows))


def cmd_demo(args: argparse.Namespace) -> None:
    from .harness.compare import compare_methods, format_comparison
    from .harness.data import prompt_set
    from .models.pairs import load_pair

    pair = load_pair(args.pair, device=args.device, dtype=_dtype(args), pack_weights=not args.no_pack,
                     drafter=args.drafter)
    ids = prompt_set("wikitext2", pair.tokenizer, 1, args.max_prompt_tokens, seed=args.seed)[0]
    input_ids = torch.tensor([ids], device=pair.device)
    if pair.dtype_choice:
        print(f"dtype auto: {pair.dtype_choice}")
    print(f"pair {pair.name} on {pair.device} ({str(pair.dtype).removeprefix('torch.')}); "
          f"WikiText-2 test prompt of {len(ids)} tokens, {args.max_new_tokens} new tokens\n")
    methods = [Autoregressive(), Linear(), FixedTree(), DynaTree(), default_method()]
    rows = compare_methods(pair.target, pair.drafter, input_ids, methods, args.max_new_tokens,
                           repeats=args.repeats)
    print(pair.tokenizer.decode(ids), end="")
    print("\033[1m" + pair.tokenizer.decode(rows[0].new_tokens) + "\033[0m" if sys.stdout.isatty()
          else " >>> " + pair.tokenizer.decode(rows[0].new_tokens))
    print()
    print(format_comparison(rows))


def _bench_prompts(args, pair, max_prompt_tokens=None):
    from .harness.data import prompt_set

    return prompt_set(args.dataset, pair.tokenizer, args.num_prompts + args.warmup,
                      max_prompt_tokens or args.max_prompt_tokens, seed=args.seed)


def _command() -> str:
    return "python -m dynatree_lib " + " ".join(sys.argv[1:])


def output_path(args, name: str):
    """``--output`` if given, else ``name`` in ``--results-dir`` ($DYNATREE_RESULTS or ./results)."""
    from pathlib import Path

    from .harness.resources import output_dir

    if getattr(args, "output", None):
        return Path(args.output)
    return Path(args.results_dir) / name if getattr(args, "results_dir", None) else output_dir() / name


def _default_stem(args, pair, kind: str) -> str:
    """``main_wikitext2_embedded_cpu``: what, on which data, which pair, which device type."""
    from .harness.environment import result_name

    return result_name(kind, args.dataset, pair.name, pair.device.type,
                       suffix=_dtype_suffix(args, pair)).removesuffix(".json")


def _sampling(args) -> dict | None:
    """``--temperature`` (with --top-k, --top-p) as generate's sampling settings, or None (greedy)."""
    if getattr(args, "temperature", None) is None:
        return None
    from .core.sampling import Sampler

    Sampler(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)  # bad values fail here
    return {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p}


def _bench_run(args, pair, methods, kind, output, max_new_tokens=None, max_prompt_tokens=None, sampling=None):
    from .harness.bench import format_table, run_benchmark, write_results

    doc = run_benchmark(pair, _bench_prompts(args, pair, max_prompt_tokens), methods,
                        max_new_tokens or args.max_new_tokens, args.warmup, kind=kind,
                        dataset=args.dataset, sampling=sampling, protocol={
                            "max_prompt_tokens": max_prompt_tokens or args.max_prompt_tokens,
                            "seed": args.seed, "command": _command()})
    print(format_table(doc))
    print(f"wrote {_save(write_results, doc, output)}")
    return doc


def cmd_bench(args: argparse.Namespace) -> None:
    from .harness.bench import ablation_specs, fixed_grid, linear_grid, parse_methods, sensitivity_specs, spec
    from .models.pairs import load_pair

    pair = load_pair(args.pair, device=args.device, dtype=_dtype(args), pack_weights=not args.no_pack)
    sampling = _sampling(args)
    suffix = f"_temperature{args.temperature:g}" if sampling else ""
    if args.command == "bench" and args.dataset == "spec_bench":
        _spec_bench_run(args, pair, parse_methods(args.methods), sampling, suffix)
    elif args.command == "bench":
        # sampled runs are named apart: chapter 5 reads every greedy main_*.json
        stem = _default_stem(args, pair, "sampling" if sampling else "main")
        output = output_path(args, stem + suffix + ".json")
        _bench_run(args, pair, parse_methods(args.methods), "main", output, sampling=sampling)
    elif args.command == "explore":
        _explore_run(args, pair)
    elif args.command == "ablation":
        output = output_path(args, _default_stem(args, pair, "ablation") + ".json")
        grid = fixed_grid(_ints(args.depths), _ints(args.branches), _floats(args.thresholds))
        _bench_run(args, pair, [*ablation_specs(), *grid, *linear_grid(_ints(args.ks))], "ablation", output)
    elif args.command == "sweep" and args.what == "fixed":
        grid = fixed_grid(_ints(args.depths), _ints(args.branches), _floats(args.thresholds))
        output = output_path(args, _default_stem(args, pair, "sweep_fixed") + ".json")
        _bench_run(args, pair, [*grid, spec("dynatree")], "sweep-fixed", output)  # DynaTree as reference
    elif args.command == "sweep":
        output = output_path(args, _default_stem(args, pair, "sensitivity") + ".json")
        _bench_run(args, pair, sensitivity_specs(), "sensitivity", output)
    else:  # scaling: one file per grid point
        methods = parse_methods(args.methods)
        stem = str(output_path(args, _default_stem(args, pair, f"scaling_{args.what}") + ".json"))
        stem = stem.removesuffix(".json")
        for value in _ints(args.grid):
            if args.what == "length":
                _bench_run(args, pair, methods, "scaling-length", f"{stem}_T{value}.json",
                           max_new_tokens=value)
            else:
                _bench_run(args, pair, methods, "scaling-prompt", f"{stem}_P{value}.json",
                           max_prompt_tokens=value)


def _explore_run(args, pair) -> None:
    from .harness.bench import format_table, run_benchmark, write_results
    from .harness.explorer import GRID, explorer_specs, first_trees

    prompts, specs = _bench_prompts(args, pair), explorer_specs()
    doc = run_benchmark(pair, prompts, specs, args.max_new_tokens, args.warmup, kind="explorer",
                        dataset=args.dataset, protocol={"max_prompt_tokens": args.max_prompt_tokens,
                                                        "seed": args.seed, "command": _command()})
    doc["grid"] = {key: list(values) for key, values in GRID.items()}
    doc["trees"] = first_trees(pair, prompts[args.warmup], specs)  # the first measured prompt
    print(format_table(doc))
    output = output_path(args, _default_stem(args, pair, "explorer") + ".json")
    print(f"wrote {_save(write_results, doc, output)}")


def _spec_bench_run(args, pair, methods, sampling=None, suffix="") -> None:
    from .harness.bench import format_table, write_results
    from .harness.environment import result_name
    from .harness.spec_bench import run_spec_bench, stratified

    measured, warmup = stratified(args.per_group, args.warmup, args.seed)
    doc = run_spec_bench(pair, measured, methods, args.max_new_tokens, warmup, sampling=sampling, protocol={
        "per_group": args.per_group, "seed": args.seed, "command": _command()})
    print(format_table(doc))
    print(f"{'':22}" + "".join(f"{g[:12]:>13}" for g in doc["groups"]))
    for label in doc["aggregates"]:
        speedups = (doc["groups"][g][label]["speedup"] for g in doc["groups"])
        print(f"{label:<22}" + "".join(f"{x:>12.2f}x" for x in speedups))
    name = result_name("sampling" if sampling else "", "spec_bench", pair.name, pair.device.type,
                       suffix=_dtype_suffix(args, pair) + suffix)
    print(f"wrote {_save(write_results, doc, output_path(args, name))}")


def cmd_costs(args: argparse.Namespace) -> None:
    from .harness.costs import cost_document
    from .harness.environment import result_name
    from .models.pairs import load_pair

    pair = load_pair(args.pair, device=args.device, pack_weights=False)
    also = {}
    if _dtype_suffix(args, pair):  # the same models in another dtype, timed in the same run
        also[args.dtype] = load_pair(args.pair, device=args.device, dtype=_dtype(args), pack_weights=False)
    doc = cost_document(pair, tuple(_ints(args.sizes)), args.prefix_len, args.repeats, command=_command(),
                        also=also)
    for role, curves in doc["curves"].items():
        for name, curve in curves.items():
            one = curve["1"]
            print(f"{role:>6} {name:>7}: " + "  ".join(f"{n}:{t / one:.2f}" for n, t in curve.items())
                  + f"   (x one-token step = {one * 1000:.1f} ms)")
    name = result_name("costs", pair.name, pair.device.type, suffix=_dtype_suffix(args, pair))
    print(f"wrote {_save(write_json, doc, output_path(args, name))}")


def cmd_export_tree(args: argparse.Namespace) -> None:
    import json

    from .harness.data import prompt_set
    from .harness.environment import environment, result_name
    from .harness.static_tree import static_tree_document
    from .models.pairs import load_pair

    pair = load_pair(args.pair, device=args.device)
    prompts = prompt_set(args.dataset, pair.tokenizer, args.num_prompts, args.max_prompt_tokens,
                         seed=args.seed)
    doc = static_tree_document(pair, prompts, args.max_new_tokens)
    doc.update(dataset=args.dataset, environment=environment(pair.device, pair.dtype), command=_command())
    print(f"most common shape: {doc['nodes']} nodes, depth {doc['depth']}, {doc['share']:.0%} of "
          f"{doc['iterations']} iterations ({doc['distinct_shapes']} distinct shapes)")
    print(f"accepted draft tokens per iteration: DynaTree {doc['dynatree_accepted_per_iteration']:.2f}, "
          f"inside this static shape {doc['static_accepted_per_iteration']:.2f} (a lower bound)")
    print(f"speculative_token_tree: {doc['vllm_speculative_token_tree']}")

    def write(doc: dict, path) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1) + "\n")
        return str(path)

    name = result_name("static_tree", args.dataset, pair.name, pair.device.type)
    print(f"wrote {_save(write, doc, output_path(args, name))}")


def cmd_export_web(args: argparse.Namespace) -> None:
    from .web.export import export_web

    manifest = export_web(Path(args.out))
    graphs = manifest["graphs"]
    print(f"weights.bin: {manifest['weights_bytes'] / 1e6:.1f} MB of integer codes, "
          f"{manifest['sources_kinds']} "
          "(matrices: 4-bit Q4_1, int8, float32)")
    for role in ("target", "draft"):
        print(f"{role:>6}: {graphs[role]['file']} {graphs[role]['bytes'] / 1e6:.1f} MB graph, expanded "
              f"in the page to {graphs[role]['external']['bytes'] / 1e6:.0f} MB of float32 weights")
    print(f"wrote the live page to {args.out}: serve it with python -m http.server -d {args.out} "
          "and open http://127.0.0.1:8000/")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def cmd_draft_report(args: argparse.Namespace) -> None:
    import json

    from .harness.draft_quality import (
        agreement_profile,
        linear_acceptance,
        memorization_check,
        step_cost_ratio,
    )
    from .harness.environment import environment, result_name
    from .models.embedded import load_draft_meta
    from .models.pairs import load_pair

    pair = load_pair(args.pair, device=args.device, dtype=_dtype(args), pack_weights=not args.no_pack)
    # Headline: chunks spread over the whole test split. The first tokens of the split (what
    # reports before this one measured) are two articles; that slice is kept for comparison.
    profile = agreement_profile(pair.target, pair.draft, pair.tokenizer, tokens=args.tokens, spread=True)
    first = agreement_profile(pair.target, pair.draft, pair.tokenizer, tokens=args.tokens)
    report = {"schema": "dynatree-draft-report/1", "pair": pair.name,
              "draft": pair.draft.config.name_or_path,
              "environment": environment(pair.device, pair.dtype), "command": _command(),
              "teacher_forced_agreement": profile["top1"],
              "agreement_tokens": args.tokens,
              "agreement_sample": "spread",
              "agreement_profile": profile,
              "agreement_first_tokens": first,
              "linear_acceptance": linear_acceptance(pair.target, pair.draft, pair.tokenizer, k=4,
                                                     num_prompts=args.prompts),
              "cost": step_cost_ratio(pair.target, pair.draft)}
    if pair.name == "embedded":  # a draft of ours: we know which text it was trained on
        report["memorization"] = memorization_check(pair.target, pair.draft, pair.tokenizer,
                                                    load_draft_meta())
    if pair.head is not None:  # the feature head: agreement by tree depth, cost, Linear(4) acceptance
        from .harness.draft_quality import head_agreement, head_step_cost_ratio

        report["head"] = {"name": pair.head.name,
                          "agreement": head_agreement(pair.target, pair.head.head, pair.tokenizer,
                                                      args.tokens),
                          "cost": head_step_cost_ratio(pair.target, pair.head),
                          "linear_acceptance": linear_acceptance(pair.target, pair.head, pair.tokenizer, k=4,
                                                                 num_prompts=args.prompts)}
    print(json.dumps(report, indent=1))
    name = result_name(pair.name, "draft_quality", suffix=_dtype_suffix(args, pair))
    print(f"wrote {_save(write_json, report, output_path(args, name))}")


def _save(write, doc: dict, path) -> str:
    """``write(doc, path)`` on rank 0 alone: under torchrun every rank holds the same results."""
    from .models.sharding import is_writer

    return str(write(doc, path)) if is_writer() else f"nothing on this rank ({path} is rank 0's)"


def write_json(doc: dict, path) -> str:
    """Validate ``doc`` against the schema it names, then write it (folders created)."""
    import json

    from .harness.schema import validate

    validate(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return str(path)


def cmd_gpu_check(args: argparse.Namespace) -> None:
    from transformers.utils import logging as hf_logging

    from .harness.gpu_check import default_name, run_gpu_check, summary

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()  # "some parameters are on the meta device": expected when offloading
    doc = run_gpu_check(args.device, args.dry_run, command=_command())
    print(summary(doc))
    print(f"wrote {_save(write_json, doc, output_path(args, default_name(doc)))}")
    if not doc["passed"]:
        raise SystemExit("gpu-check FAILED: see the verdicts above")


def _outputs(p: argparse.ArgumentParser, default_name: str) -> None:
    p.add_argument("--output", help=f"JSON file to write (default: {default_name} in --results-dir)")
    p.add_argument("--results-dir", help="folder for the default file name (default: $DYNATREE_RESULTS "
                                         "or ./results)")


def _pair_dtype(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16", "auto"],
                   help="the pair's dtype (default: float32 on CPU, the embedded pair everywhere; "
                        "float16 for hub pairs on CUDA; auto: bfloat16 where the CPU has it natively "
                        "and it times faster, else float32). bfloat16 on CPU: no weight packing; outputs "
                        "are checked against the bfloat16 target's own greedy decoding "
                        "(identical / near-tie / mismatch); result files get a _<dtype> suffix")


def _dtype(args) -> torch.dtype | str | None:
    dtype = getattr(args, "dtype", None)
    return dtype if dtype == "auto" else DTYPES[dtype] if dtype else None


def _dtype_suffix(args, pair) -> str:
    """``_bfloat16`` when ``--dtype`` asked for other than the pair's default dtype, else ""."""
    from .models.pairs import default_dtype

    chosen = pair.dtype if _dtype(args) == "auto" else _dtype(args)   # auto: what it chose
    if chosen is None or chosen == default_dtype(pair.name, pair.device):
        return ""
    return f"_{str(chosen).removeprefix('torch.')}"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", required=True, help="target model id or local path")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--device", help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    p.add_argument("--ignore-eos", action="store_true", help="always generate --max-new-tokens")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dynatree_lib",
                                     description="Exact greedy speculative decoding.")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate text with one method and print its stats")
    _common(gen)
    gen.add_argument("--draft", help="draft model id or local path (unused for --method ar)")
    gen.add_argument("--method", choices=sorted(METHODS), default="dynatree")
    gen.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                     help="method parameter, e.g. --param k=4 or --param theta_high=0.8 (repeatable)")
    gen.add_argument("--temperature", type=float, default=None,
                     help="sample at this temperature (lossless speculative sampling) instead of greedy")
    gen.add_argument("--top-k", type=int, default=0, help="with --temperature (0: off)")
    gen.add_argument("--top-p", type=float, default=1.0, help="with --temperature (1: off)")
    gen.add_argument("--seed", type=int, default=0, help="with --temperature: the generator's seed")
    gen.set_defaults(run=cmd_generate)
    cmp = sub.add_parser("compare", help="run several methods on one prompt: exactness and speed")
    _common(cmp)
    cmp.add_argument("--draft", required=True, help="draft model id or local path")
    cmp.add_argument("--methods", default="ar,linear,fixed,dynatree",
                     help="comma-separated, from: " + ",".join(METHODS))
    cmp.add_argument("--repeats", type=int, default=3, help="measured rounds after one warm-up")
    cmp.set_defaults(run=cmd_compare)
    demo = sub.add_parser("demo", help="the four methods on a WikiText-2 prompt with the default pair")
    demo.add_argument("--pair", help="embedded, pythia or TARGET,DRAFT (default: by device)")
    demo.add_argument("--device", help="cpu, cuda, ... (default: cuda if available)")
    demo.add_argument("--no-pack", action="store_true",
                     help="CPU: keep the default float32 matmul (no oneDNN weight packing)")
    demo.add_argument("--drafter", choices=["model", "head"],
                      help="what our methods draft with (default: the pair's faster one)")
    _pair_dtype(demo)
    demo.add_argument("--max-new-tokens", type=int, default=64)
    demo.add_argument("--max-prompt-tokens", type=int, default=128)
    demo.add_argument("--repeats", type=int, default=2, help="measured rounds after one warm-up")
    demo.add_argument("--seed", type=int, default=0, help="which WikiText-2 test prompt")
    demo.set_defaults(run=cmd_demo)
    rep = sub.add_parser("draft-report", help="draft agreement, acceptance and cost against its target")
    rep.add_argument("--pair", help="embedded, pythia or TARGET,DRAFT (default: by device)")
    rep.add_argument("--device")
    rep.add_argument("--no-pack", action="store_true",
                     help="CPU: keep the default float32 matmul (no oneDNN weight packing)")
    _pair_dtype(rep)
    rep.add_argument("--tokens", type=int, default=8192,
                     help="WikiText-2 test tokens for agreement (256-token chunks spread over the split, "
                          "and the same number from its start)")
    rep.add_argument("--prompts", type=int, default=20,
                     help="WikiText-2 test prompts for Linear(4) acceptance")
    _outputs(rep, "<pair>_draft_quality.json")
    rep.set_defaults(run=cmd_draft_report)
    cost = sub.add_parser("costs", help="forward-cost curves of target and draft (default, packed)")
    cost.add_argument("--pair", help="embedded, pythia or TARGET,DRAFT (default: by device)")
    cost.add_argument("--device")
    cost.add_argument("--dtype", choices=["float16", "bfloat16"],
                      help="also time the pair loaded in this dtype, in the same run (curves[role][dtype]; "
                           "the file gets a _<dtype> suffix)")
    cost.add_argument("--sizes", default="1,2,3,4,6,8,12,16,24,32,48,64", help="tokens per forward")
    cost.add_argument("--prefix-len", type=int, default=256, help="cached tokens before each forward")
    cost.add_argument("--repeats", type=int, default=20, help="measured rounds (each size's median)")
    _outputs(cost, "costs_<pair>_<device>.json")
    cost.set_defaults(run=cmd_costs)
    tree = sub.add_parser("export-tree", help="the tree shape DynaTree grew most often on a workload, as "
                                               "a static tree (vLLM's speculative_token_tree) with what "
                                               "it would keep")
    tree.add_argument("--pair", help="embedded, pythia or TARGET,DRAFT (default: by device)")
    tree.add_argument("--device")
    tree.add_argument("--dataset", choices=["wikitext2", "pg19"], default="wikitext2")
    tree.add_argument("--num-prompts", type=int, default=4)
    tree.add_argument("--max-new-tokens", type=int, default=64)
    tree.add_argument("--max-prompt-tokens", type=int, default=200)
    tree.add_argument("--seed", type=int, default=0, help="prompt selection seed")
    _outputs(tree, "static_tree_<dataset>_<pair>_<device>.json")
    tree.set_defaults(run=cmd_export_tree)
    web = sub.add_parser("export-web", help="the embedded pair as ONNX graphs + the live in-browser decoder "
                                             "(a static page; ~2 min the first time)")
    web.add_argument("--out", default="live", help="output folder (default: ./live)")
    web.set_defaults(run=cmd_export_web)
    gpu = sub.add_parser("gpu-check", help="exactness in fp32/fp16/bf16, a GPU+CPU split target and "
                                           "Pythia-shaped forward costs on a CUDA machine (~4 min)")
    gpu.add_argument("--device", help="default: cuda (--dry-run: cpu)")
    gpu.add_argument("--dry-run", action="store_true", help="the same checks on the CPU with tiny models")
    _outputs(gpu, "gpu_check_<gpu name>.json")
    gpu.set_defaults(run=cmd_gpu_check)
    for name, help_text in (("bench", "main comparison of methods over a prompt set"),
                            ("sweep", "fixed-tree grid (fixed) or DynaTree sensitivity (dynatree)"),
                            ("scaling", "generation-length (scaling length) or prompt-length grid"),
                            ("ablation", "fixed tree -> + dynamic breadth -> + dynamic depth -> + pruning "
                                         "-> + history adaptation, with the fixed-tree and Linear(k) "
                                         "sweeps on the same prompts"),
                            ("explore", "the static book's explorer: a grid of DynaTree settings, speed and "
                                        "first trees")):
        b = sub.add_parser(name, help=help_text)
        if name == "sweep":
            b.add_argument("what", choices=["fixed", "dynatree"])
        if name in ("sweep", "ablation"):
            b.add_argument("--depths", default="3,5,8")
            b.add_argument("--branches", default="1,2,3")
            b.add_argument("--thresholds", default="0.05,0.1,0.2")
        if name == "ablation":
            b.add_argument("--ks", default="2,4,6,8", help="Linear(k) values run beside the ladder")
        if name == "scaling":
            b.add_argument("what", choices=["length", "prompt"])
            b.add_argument("--grid", required=True, help="comma-separated T or prompt-token values")
        if name in ("bench", "scaling"):
            ours = "linear,fixed,dynatree,dynatree+lookup,default"
            b.add_argument("--methods", default=f"ar,hf,hf-assisted,prompt-lookup,{ours}" if name == "bench"
                           else f"ar,{ours}",
                           help="comma-separated: ar, hf, hf-assisted, prompt-lookup, linear, fixed, "
                                "dynatree, dynatree+lookup (DynaTree with the context-lookup extension), "
                                "default (the library's default method: + lookup, priced controller), "
                                "default-breadth|depth|pruning|history|pricing|lookup (the default "
                                "with that rule or source removed)")
        b.add_argument("--pair", help="embedded, pythia or TARGET,DRAFT (default: by device)")
        b.add_argument("--device")
        _pair_dtype(b)
        b.add_argument("--no-pack", action="store_true",
                         help="CPU: keep the default float32 matmul (no oneDNN weight packing)")
        datasets = ["wikitext2", "pg19", "wikitext2-validation"] + (["spec_bench"] if name == "bench" else [])
        b.add_argument("--dataset", choices=datasets, default="wikitext2",
                       help="wikitext2-validation: for tuning, never for evaluation; spec_bench: chat "
                            "questions in six task groups, generation stops at EOS")
        if name == "bench":
            b.add_argument("--per-group", type=int, default=None,
                           help="spec_bench: N questions of each of the six groups (fixed --seed); "
                                "default all 480")
            b.add_argument("--temperature", type=float, default=None,
                           help="sample at this temperature instead of decoding greedily (every method, "
                                "HF's included; lossless speculative sampling); writes sampling_<dataset>_"
                                "<pair>_<device>_temperature<t>.json (spec_bench: sampling_spec_bench_...)")
            b.add_argument("--top-k", type=int, default=0, help="with --temperature (0: off)")
            b.add_argument("--top-p", type=float, default=1.0, help="with --temperature (1: off)")
        b.add_argument("--num-prompts", type=int, default=10)
        b.add_argument("--warmup", type=int, default=2)
        b.add_argument("--max-new-tokens", type=int, default=128)
        b.add_argument("--max-prompt-tokens", type=int, default=200,
                       help="prompt truncation in tokens (the paper's 800 characters are ~190 tokens)")
        b.add_argument("--seed", type=int, default=0, help="prompt selection seed")
        _outputs(b, "<kind>_<dataset>_<pair>_<device>.json" + (" (scaling: a prefix; _T<n> or _P<n> "
                                                                    "is added)" if name == "scaling" else ""))
        b.set_defaults(run=cmd_bench)
    args = parser.parse_args(argv)
    if not is_writer():  # torchrun: every rank computes the same thing; rank 0 alone speaks
        os.environ["TQDM_DISABLE"] = "1"
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            return _run(parser, args)
    return _run(parser, args)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.command == "compare" and any(m not in METHODS for m in args.methods.split(",")):
        parser.error(f"--methods: choose from {','.join(METHODS)}")
    if args.command == "generate" and args.method != "ar" and args.draft is None:
        parser.error("--draft is required unless --method ar")
    args.run(args)


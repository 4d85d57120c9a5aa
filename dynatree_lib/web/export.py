"""``python -m dynatree_lib export-web``: the embedded pair as ONNX graphs a browser can run.

A plain ONNX export of a causal LM takes a 2D padding mask and builds a causal one inside:
it cannot verify a token tree. :class:`StepGraph` is one forward of a Llama-family model
written out with everything tree verification needs as explicit inputs:

* ``input_ids`` [1, n] and ``position_ids`` [1, n] (a tree node sits at prefix + depth);
* ``attention_mask`` [1, 1, n, P + n], additive (0 or a large negative number): each node
  sees the cached prefix and its own root path, as :meth:`TokenTree.attention_bias` builds it;
* ``past_keys``/``past_values`` [layers, kv_heads, P, head_dim], the KV cache of the P
  tokens before, and the outputs ``present_keys``/``present_values`` [layers, kv_heads, n,
  head_dim], the entries of the n new tokens only (the caller keeps the cache and gathers the
  accepted path, as :func:`dynatree_lib.core.verify.keep_cache_entries` does);
* ``logits`` [1, n, V] (the draft scores its shortlist only; the ids are in the manifest)
  and ``next_tokens`` [1, n], their argmax, so a greedy caller fetches n integers.

Exporter: ``torch.onnx.export`` (the dynamo exporter, onnxscript), opset 18. Weights: the
big matrices leave the graph (external data) and travel as the integer codes they came
from (:class:`PackedWeights`: the target's GGUF Q4_1 layers and Q8_0 embedding, the draft's
int8 rows; about 115 MB for both models), which the page expands to float32 exactly as
:func:`materialize` does, so onnxruntime-web runs its float kernels on the PyTorch model's
weights. The browser decoder (``dynatree_lib/web/page/``), the tokenizer and ``manifest.json``
are written beside the graphs, with onnxruntime-web's wasm build fetched once from the npm
registry (pinned version and checksum): the output folder is a complete static page,
``python -m http.server -d <out>``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import tarfile
import time
import urllib.request
from pathlib import Path

import torch
from torch import Tensor, nn

WEB_SOURCES = Path(__file__).parent / "page"
OPSET = 18
BLOCK = 32
ORT_VERSION = "1.31.1"  # onnxruntime-web on npm: the wasm build only (no WebGPU kernels)
# the tarball's sha512 as the npm registry publishes it (dist.integrity)
ORT_SHA512 = "5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")


class StepGraph(nn.Module):
    """One forward of a Llama-family causal LM with an explicit tree mask and KV cache.

    Reads the weights of a Hugging Face ``LlamaForCausalLM`` (or the embedded pair's
    shortlist draft); nothing is trained here. Linear weights are kept as [in, out] matrices
    so the export gives plain ``MatMul`` nodes whose weights :func:`externalize` moves out.
    """

    def __init__(self, model) -> None:
        super().__init__()
        config = model.config
        self.layers = config.num_hidden_layers
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta") or config.rope_theta
        rope_type = (getattr(config, "rope_parameters", None) or {}).get("rope_type", "default")
        biased = getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False)
        if rope_type != "default" or biased:
            raise ValueError("StepGraph supports Llama models with default RoPE and no biases")
        steps = torch.arange(0, self.head_dim, 2, dtype=torch.int64).float() / self.head_dim
        self.register_buffer("inv_freq", 1.0 / (theta ** steps), persistent=False)
        self.embed = nn.Parameter(model.get_input_embeddings().weight.detach().float(), requires_grad=False)

        def weight(linear: nn.Linear) -> nn.Parameter:
            return nn.Parameter(linear.weight.detach().float().t().contiguous(), requires_grad=False)

        self.blocks = nn.ModuleList()
        for layer in model.model.layers:
            block = nn.Module()
            attn, mlp = layer.self_attn, layer.mlp
            for name, linear in (("q", attn.q_proj), ("k", attn.k_proj), ("v", attn.v_proj),
                                 ("o", attn.o_proj),
                                 ("gate", mlp.gate_proj), ("up", mlp.up_proj), ("down", mlp.down_proj)):
                setattr(block, name, weight(linear))
            block.norm1 = nn.Parameter(layer.input_layernorm.weight.detach().float(), requires_grad=False)
            block.norm2 = nn.Parameter(layer.post_attention_layernorm.weight.detach().float(),
                                       requires_grad=False)
            self.blocks.append(block)
        self.norm = nn.Parameter(model.model.norm.weight.detach().float(), requires_grad=False)
        self.lm_head = weight(model.get_output_embeddings())

    def _rms(self, x: Tensor, weight: Tensor) -> Tensor:
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    def forward(self, input_ids: Tensor, position_ids: Tensor, attention_mask: Tensor,
                past_keys: Tensor, past_values: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        n = input_ids.shape[1]
        x = nn.functional.embedding(input_ids[0], self.embed)  # [n, H]: a Gather on the table
        freqs = position_ids[0].float().unsqueeze(1) * self.inv_freq.unsqueeze(0)  # [n, d/2]
        angles = torch.cat([freqs, freqs], dim=-1)
        cos, sin = angles.cos(), angles.sin()
        mask = attention_mask[0]  # [1, n, P + n], broadcast over heads
        group = self.heads // self.kv_heads
        new_keys, new_values = [], []
        for i, block in enumerate(self.blocks):
            h = self._rms(x, block.norm1)
            q = (h @ block.q).view(n, self.heads, self.head_dim).transpose(0, 1)
            k = (h @ block.k).view(n, self.kv_heads, self.head_dim).transpose(0, 1)
            v = (h @ block.v).view(n, self.kv_heads, self.head_dim).transpose(0, 1)
            q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
            new_keys.append(k)
            new_values.append(v)
            keys = torch.cat([past_keys[i], k], dim=1).repeat_interleave(group, dim=0)
            values = torch.cat([past_values[i], v], dim=1).repeat_interleave(group, dim=0)
            scores = q @ keys.transpose(1, 2) * (self.head_dim ** -0.5) + mask
            out = (torch.softmax(scores, dim=-1) @ values).transpose(0, 1).reshape(n, -1)
            x = x + out @ block.o
            h = self._rms(x, block.norm2)
            x = x + (nn.functional.silu(h @ block.gate) * (h @ block.up)) @ block.down
        logits = (self._rms(x, self.norm) @ self.lm_head).unsqueeze(0)
        return logits, logits.argmax(dim=-1), torch.stack(new_keys), torch.stack(new_values)


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


INPUTS = ["input_ids", "position_ids", "attention_mask", "past_keys", "past_values"]
OUTPUTS = ["logits", "next_tokens", "present_keys", "present_values"]


def export_step_graph(model, path: Path, packed: PackedWeights | None = None) -> dict:
    """Export ``model`` as a :class:`StepGraph` ONNX file at ``path``; with ``packed``, its big
    weights go there (:func:`externalize`, file ``<path stem>.weights``) instead of into the
    graph. Returns the facts the manifest records."""
    import onnx

    graph = StepGraph(model).eval()
    past = 3
    cache = torch.zeros(graph.layers, graph.kv_heads, past, graph.head_dim)
    example = (torch.zeros(1, 2, dtype=torch.long), torch.arange(past, past + 2).unsqueeze(0),
               torch.zeros(1, 1, 2, past + 2), cache, cache.clone())
    nodes, cached = torch.export.Dim("nodes", min=1, max=4096), torch.export.Dim("past", max=8192)
    total = torch.export.Dim("total", min=1, max=12288)  # past + nodes (the exporter takes no sums)
    shapes = {"input_ids": {1: nodes}, "position_ids": {1: nodes},
              "attention_mask": {2: nodes, 3: total},
              "past_keys": {2: cached}, "past_values": {2: cached}}
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with torch.no_grad(), _quiet():
        program = torch.onnx.export(graph, example, input_names=INPUTS, output_names=OUTPUTS,
                                    opset_version=OPSET, dynamo=True, dynamic_shapes=shapes,
                                    external_data=False, verbose=False)
    proto = program.model_proto
    weights = externalize(proto, packed, path.stem + ".weights") if packed is not None else None
    onnx.save_model(proto, str(path))
    return {"file": path.name, "bytes": path.stat().st_size, "external": weights, "layers": graph.layers,
            "heads": graph.heads, "kv_heads": graph.kv_heads, "head_dim": graph.head_dim,
            "outputs": int(graph.lm_head.shape[1]), "export_seconds": round(time.time() - started, 1)}


class _quiet:
    """Silence the exporter's progress prints and warnings (the command prints its own)."""

    def __enter__(self):
        import contextlib
        import warnings

        self._stack = contextlib.ExitStack()
        self._stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        self._stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        return self

    def __exit__(self, *exc):
        self._stack.close()
        return False


def export_web(out: Path, cache: Path | None = None) -> dict:
    """Write the live page for the embedded pair into ``out``: the target and draft graphs,
    the tokenizer, ``manifest.json``, the decoder (``dynatree_lib/web/page``) and the runtime.

    The graphs are built once per (target, draft weights, this module) and kept under
    ``$DYNATREE_CACHE/web-<key>``; later calls copy them."""
    from ..core.growth import METHODS
    from ..models.embedded import DRAFT_WEIGHTS, cache_dir, converted_target_dir

    cache = cache or cache_dir()
    target_dir = converted_target_dir()
    key = hashlib.sha256(b"".join([
        (target_dir / "dynatree_stamp.json").read_bytes(), DRAFT_WEIGHTS.read_bytes(),
        Path(__file__).read_bytes()])).hexdigest()[:16]
    built = cache / f"web-{key}"
    if not (built / "manifest.json").is_file():
        from ..models.embedded import load_embedded_draft, load_embedded_target

        print(f"exporting the embedded pair to ONNX in {built} (once, ~2 min)...", flush=True)
        tmp = built.with_name(built.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        target, tokenizer = load_embedded_target()
        draft = load_embedded_draft(target)
        packed = PackedWeights()
        graphs = {"target": export_step_graph(target, tmp / "target.onnx", packed),
                  "draft": export_step_graph(draft, tmp / "draft.onnx", packed)}
        (tmp / "weights.bin").write_bytes(packed.data)
        graphs["draft"]["shortlist"] = draft.shortlist.tolist()
        shutil.copy(target_dir / "tokenizer.json", tmp / "tokenizer.json")
        system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
        probe = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}],
                                              add_generation_prompt=True, tokenize=False)
        if f"<|im_start|>system\n{system}<|im_end|>\n" not in probe:
            raise RuntimeError("the target's chat template changed: update the live page's template")
        manifest = {
            "model": "SmolLM2-135M-Instruct (GGUF Q4_1 weights) + the embedded distilled draft",
            "graphs": graphs, "sources": packed.sources, "weights_bytes": len(packed.data),
            "sources_kinds": {kind: sum(src["kind"] == kind for src in packed.sources)
                              for kind in ("q4", "q8", "f32")},
            "opset": OPSET, "exporter": f"torch.onnx.export (dynamo), torch {torch.__version__}",
            "eos_token_id": int(target.generation_config.eos_token_id),
            "chat": {"im_start": 1, "im_end": 2, "system": system},
            "runtime": f"onnxruntime-web {ORT_VERSION} (wasm)"}
        (tmp / "manifest.json").write_text(json.dumps(manifest))
        shutil.rmtree(built, ignore_errors=True)
        tmp.rename(built)
    out.mkdir(parents=True, exist_ok=True)
    for item in built.iterdir():
        if item.name != "manifest.json":
            shutil.copy(item, out / item.name)
    for item in WEB_SOURCES.iterdir():
        if item.suffix in (".html", ".js", ".css"):
            shutil.copy(item, out / item.name)
    fetch_runtime(out, cache)
    # The methods' defaults come from the core's table at every call, not from the cache, whose
    # key covers the graphs only: a renamed or retuned knob reaches the page at once.
    manifest = json.loads((built / "manifest.json").read_text())
    manifest["defaults"] = {entry.name: vars(entry.config()).copy() for entry in METHODS.values()
                            if entry.drafts}   # the page's methods and their defaults
    (out / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def fetch_runtime(out: Path, cache: Path) -> None:
    """Copy onnxruntime-web's wasm build into ``out``, downloading the npm tarball once."""
    tarball = cache / f"onnxruntime-web-{ORT_VERSION}.tgz"
    if not tarball.is_file():
        url = f"https://registry.npmjs.org/onnxruntime-web/-/onnxruntime-web-{ORT_VERSION}.tgz"
        print(f"fetching {url} (once)", flush=True)
        try:
            data = urllib.request.urlopen(url, timeout=120).read()
        except OSError as error:
            raise RuntimeError(f"could not fetch onnxruntime-web from the npm registry ({error}); "
                               f"put {tarball.name} in {cache} by hand (npm pack onnxruntime-web@"
                               f"{ORT_VERSION})") from error
        cache.mkdir(parents=True, exist_ok=True)
        tarball.write_bytes(data)
    data = tarball.read_bytes()
    if base64.b64encode(hashlib.sha512(data).digest()).decode() != ORT_SHA512:
        tarball.unlink()
        raise RuntimeError(f"{tarball} does not match onnxruntime-web {ORT_VERSION}'s published checksum")
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for name in ORT_FILES:
            (out / name).write_bytes(archive.extractfile(f"package/dist/{name}").read())
    (out / "LICENSE.onnxruntime-web.txt").write_text(
        f"onnxruntime-web {ORT_VERSION} (npm), MIT License, Copyright (c) Microsoft Corporation.\n"
        "https://github.com/microsoft/onnxruntime/blob/main/LICENSE\n")


# ---- integer weights that reproduce the weights we have ----------------------------------------

def _blocks(weight: Tensor) -> Tensor:
    """[K, N] matrix (a MatMul's B) -> [N, K / BLOCK, BLOCK] blocks along the input dimension."""
    k, n = weight.shape
    return weight.t().reshape(n, k // BLOCK, BLOCK)


def _smallest(values: Tensor) -> Tensor:
    """``values`` as float16 when that loses nothing (GGUF stores its scales so), else float32."""
    half = values.half()
    return half if torch.equal(half.double(), values) else values.float()


def exact_codes(weight: Tensor) -> dict | None:
    """Integer codes that give ``weight`` [K, N] back, if it is a dequantised GGUF Q4_1
    matrix (x = d q + m per block of 32 along K, q in 0..15), an int8 symmetric one (Q8_0:
    x = d q per block; or one scale per output column, the draft's committed weights); None
    otherwise. Returns {"codes": [N, blocks, 32] uint8 (4-bit) or int8, "scale": [N, blocks
    or 1, 1], "offset": [N, blocks, 1] or None}; d and m are stored as float16 when exact."""
    if weight.shape[0] % BLOCK:
        return None
    blocks = _blocks(weight.double())
    tolerance = 1e-6 * float(blocks.abs().max())

    def rebuilt(codes, scale, offset=None):
        value = codes.float() * scale.float() + (0 if offset is None else offset.float())
        return (value.double() - blocks).abs().max() <= tolerance

    low, high = blocks.amin(-1, keepdim=True), blocks.amax(-1, keepdim=True)
    step = _smallest((high - low) / 15)
    offset = _smallest(low)
    codes = torch.round((blocks - offset.double()) / step.double().clamp(min=1e-30)).clamp(0, 15)
    if rebuilt(codes, step, offset):
        return {"codes": codes.to(torch.uint8), "scale": step, "offset": offset}
    for amax in (blocks.abs().amax(-1, keepdim=True), blocks.abs().amax(dim=(1, 2), keepdim=True)):
        scale = (amax / 127).clamp(min=1e-30)
        scale = _smallest(scale) if amax.shape[1] > 1 else scale.float()
        codes = torch.round(blocks / scale.double()).clamp(-127, 127)
        if rebuilt(codes, scale):
            return {"codes": codes.to(torch.int8), "scale": scale, "offset": None}
    return None


class PackedWeights:
    """The big weights of one or more graphs, as integer codes in one file (``weights.bin``).

    Each *source* is a matrix [N, K] (an output layer's weight as stored, or an embedding
    table) held as :func:`exact_codes` (4-bit Q4_1 codes two a byte, or int8, with float16
    scales when exact) or as raw float32 when it has no exact codes. Identical matrices are
    stored once: the target's input embedding, its (tied) output layer and the draft's input
    embedding are one Q8_0 table. The page expands the sources into each graph's float32
    external-data file before it creates the session (:func:`materialize` is the same in
    Python): the download is small and the forward runs onnxruntime's float kernels
    (onnxruntime-web 1.31.1's 4-bit ``MatMulNBits`` was ten times slower than its float
    MatMul in WebAssembly here, and folding dequantisation ops at load ran out of memory).
    """

    def __init__(self) -> None:
        self.data = bytearray()
        self.sources: list[dict] = []
        self._index: dict[str, int] = {}

    def _segment(self, array) -> list:
        import numpy as np

        array = np.ascontiguousarray(array)
        while len(self.data) % 8:
            self.data.append(0)
        start = len(self.data)
        self.data.extend(array.tobytes())
        return [start, array.nbytes, str(array.dtype), list(array.shape)]

    def add(self, matrix: Tensor) -> int:
        """Index of the source holding ``matrix`` [N, K] (blocks of 32 along K)."""
        key = hashlib.sha256(matrix.float().numpy().tobytes()).hexdigest()
        if key in self._index:
            return self._index[key]
        n, k = matrix.shape
        found = exact_codes(matrix.t())
        if found is None:
            source = {"kind": "f32", "rows": n, "cols": k, "values": self._segment(matrix.float().numpy())}
        else:
            codes = found["codes"]
            if codes.dtype == torch.uint8:
                codes = codes[..., 0::2] | (codes[..., 1::2] << 4)  # two codes a byte, low nibble first
            source = {"kind": "q4" if found["codes"].dtype == torch.uint8 else "q8", "rows": n, "cols": k,
                      "codes": self._segment(codes.numpy()), "scale": self._segment(found["scale"].numpy()),
                      "offset": None if found["offset"] is None else self._segment(found["offset"].numpy())}
        self.sources.append(source)
        self._index[key] = len(self.sources) - 1
        return self._index[key]


def externalize(proto, packed: PackedWeights, location: str, minimum: int = 1024) -> dict:
    """Move the graph's float matrices (MatMul weights [K, N], Gather tables [V, H]) of at least
    ``minimum`` values out of ``proto`` into the float32 file ``location`` the page builds from
    ``packed``; returns that file's layout {"file", "bytes", "tensors": [...]} for the manifest."""
    from onnx import TensorProto, numpy_helper

    gathered = {node.input[0] for node in proto.graph.node if node.op_type in ("Gather", "GatherND")}
    multiplied = {node.input[1] for node in proto.graph.node if node.op_type == "MatMul"}
    tensors, offset = [], 0
    for init in proto.graph.initializer:
        if init.data_type != TensorProto.FLOAT or len(init.dims) != 2 or \
                init.dims[0] * init.dims[1] < minimum:
            continue
        if init.name not in gathered | multiplied:
            continue
        value = torch.from_numpy(numpy_helper.to_array(init).copy())
        table = init.name in gathered  # [V, H] row-major; a MatMul weight is [K, N]: a source transposed
        if table and init.name in multiplied:
            raise ValueError(f"{init.name} is both a Gather table and a MatMul weight")
        source = packed.add(value if table else value.t())
        count = value.numel()
        tensors.append({"name": init.name, "source": source, "layout": "rows" if table else "transposed",
                        "offset": offset})
        init.ClearField("raw_data")
        del init.float_data[:]
        init.data_location = TensorProto.EXTERNAL
        del init.external_data[:]
        for key, val in (("location", location), ("offset", str(offset)), ("length", str(4 * count))):
            entry = init.external_data.add()
            entry.key, entry.value = key, val
        offset += 4 * count
    return {"file": location, "bytes": offset, "tensors": tensors}


def decode_source(source: dict, data: bytes) -> Tensor:
    """A source of :class:`PackedWeights` back to its float32 matrix [N, K] (as the page does)."""
    import numpy as np

    def segment(entry):
        start, length, dtype, shape = entry
        return torch.from_numpy(np.frombuffer(data, dtype=dtype, count=length // np.dtype(dtype).itemsize,
                                              offset=start).reshape(shape).copy())

    n, k = source["rows"], source["cols"]
    if source["kind"] == "f32":
        return segment(source["values"])
    codes = segment(source["codes"])
    if source["kind"] == "q4":
        codes = torch.stack([codes & 15, codes >> 4], dim=-1).flatten(-2)
    values = codes.float() * segment(source["scale"]).float()
    if source["offset"] is not None:
        values = values + segment(source["offset"]).float()
    return values.reshape(n, k)


def materialize(layout: dict, sources: list[dict], data: bytes) -> bytes:
    """The float32 external-data file of one graph, from ``weights.bin`` (tests, Python users)."""
    out = bytearray(layout["bytes"])
    for tensor in layout["tensors"]:
        matrix = decode_source(sources[tensor["source"]], data)
        value = matrix if tensor["layout"] == "rows" else matrix.t()
        raw = value.contiguous().numpy().tobytes()
        out[tensor["offset"]: tensor["offset"] + len(raw)] = raw
    return bytes(out)

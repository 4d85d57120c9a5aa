// DynaTree live: the embedded pair decoding in the reader's browser (onnxruntime-web, wasm).
// The rules are the library's (dynatree_lib/core/growth.py, controller.py, drafter.py,
// verify.py, accept.py, kv.py, tree.py), ported line by line: level-batched drafting with the draft's KV cache kept, one
// target forward per iteration over the whole tree, the greedy acceptance walk and the KV
// gather. The graphs come from `python -m dynatree_lib export-web` (dynatree_lib/web/export.py).
import * as ort from './ort.wasm.min.mjs';

const BASE = new URL('./', import.meta.url).href;
const MASKED = -3.4028234663852886e38; // float32 min, as TokenTree.attention_bias uses
const nextFrame = () => new Promise((resolve) => setTimeout(resolve, 0));

// ---- tokenizer: byte-level BPE (GPT-2 pre-tokenisation), the model's tokenizer.json -------
function byteToUnicode() {
  const bytes = [];
  for (let b = 33; b <= 126; b++) bytes.push(b);
  for (let b = 161; b <= 172; b++) bytes.push(b);
  for (let b = 174; b <= 255; b++) bytes.push(b);
  const chars = bytes.slice();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) { bytes.push(b); chars.push(256 + extra++); }
  }
  const map = new Map();
  bytes.forEach((b, i) => map.set(b, String.fromCodePoint(chars[i])));
  return map;
}

export class Tokenizer {
  constructor(json) {
    this.vocab = new Map(Object.entries(json.model.vocab));
    this.tokens = [];
    for (const [token, id] of this.vocab) this.tokens[id] = token;
    for (const added of json.added_tokens) this.tokens[added.id] = added.content;
    this.special = new Set(json.added_tokens.filter((t) => t.special).map((t) => t.id));
    this.ranks = new Map(json.model.merges.map((m, i) => [Array.isArray(m) ? m.join(' ') : m, i]));
    this.byteChar = byteToUnicode();
    this.charByte = new Map([...this.byteChar].map(([b, c]) => [c, b]));
    this.pattern = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
    this.cache = new Map();
  }

  bpe(word) {
    if (this.cache.has(word)) return this.cache.get(word);
    let parts = Array.from(word);
    while (parts.length > 1) {
      let best = -1, bestRank = Infinity;
      for (let i = 0; i < parts.length - 1; i++) {
        const rank = this.ranks.get(parts[i] + ' ' + parts[i + 1]);
        if (rank !== undefined && rank < bestRank) { best = i; bestRank = rank; }
      }
      if (best < 0) break;
      const merged = parts[best] + parts[best + 1];
      const next = [];
      for (let i = 0; i < parts.length; i++) {  // merge every occurrence of the pair, left to right
        if (i < parts.length - 1 && parts[i] + ' ' + parts[i + 1] === parts[best] + ' ' + parts[best + 1]) {
          next.push(merged); i++;
        } else next.push(parts[i]);
      }
      parts = next;
    }
    const ids = parts.map((p) => this.vocab.get(p));
    this.cache.set(word, ids);
    return ids;
  }

  encode(text) {  // plain text, no special tokens
    const ids = [];
    const utf8 = new TextEncoder();
    for (const match of text.matchAll(this.pattern)) {
      const mapped = Array.from(utf8.encode(match[0]), (b) => this.byteChar.get(b)).join('');
      ids.push(...this.bpe(mapped));
    }
    return ids;
  }

  decode(ids) {
    const bytes = [];
    for (const id of ids) {
      if (this.special.has(id)) continue;
      for (const ch of this.tokens[id] ?? '') {
        const b = this.charByte.get(ch);
        if (b !== undefined) bytes.push(b);
      }
    }
    return new TextDecoder().decode(new Uint8Array(bytes));
  }

  piece(id) {  // one token for display
    if (this.special.has(id)) return this.tokens[id];
    return this.decode([id]).replace(/ /g, '\u2423').replace(/\n/g, '\u23ce') || '\ufffd';
  }
}

// ---- a step graph and its KV cache (layout [layer, kv head, position, head dim]) ----------
class StepModel {
  constructor(session, info) {
    this.session = session;
    this.layers = info.layers; this.heads = info.kv_heads; this.dim = info.head_dim;
    this.capacity = 0; this.length = 0; this.keys = null; this.values = null; this.seconds = 0;
  }

  reset() { this.length = 0; this.seconds = 0; }

  reserve(length) {
    if (length <= this.capacity) return;
    const capacity = Math.max(length, 2 * this.capacity, 256);
    const grow = (old) => {
      const fresh = new Float32Array(this.layers * this.heads * capacity * this.dim);
      if (old) {
        for (let lh = 0; lh < this.layers * this.heads; lh++) {
          fresh.set(old.subarray(lh * this.capacity * this.dim, (lh * this.capacity + this.length) * this.dim),
            lh * capacity * this.dim);
        }
      }
      return fresh;
    };
    this.keys = grow(this.keys); this.values = grow(this.values); this.capacity = capacity;
  }

  past(store) {
    const rows = this.length * this.dim;
    const out = new Float32Array(this.layers * this.heads * rows);
    for (let lh = 0; lh < this.layers * this.heads; lh++) {
      out.set(store.subarray(lh * this.capacity * this.dim, lh * this.capacity * this.dim + rows), lh * rows);
    }
    return new ort.Tensor('float32', out, [this.layers, this.heads, this.length, this.dim]);
  }

  // ids, positions: [n] numbers; visible(i, j): may new token i see cache column j (< length + n)
  async run(ids, positions, visible, wantLogits) {
    const n = ids.length, total = this.length + n;
    const mask = new Float32Array(n * total);
    for (let i = 0; i < n; i++) for (let j = 0; j < total; j++) if (!visible(i, j)) mask[i * total + j] = MASKED;
    const feeds = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, n]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from(positions, BigInt), [1, n]),
      attention_mask: new ort.Tensor('float32', mask, [1, 1, n, total]),
      past_keys: this.past(this.keys ?? new Float32Array(0)),
      past_values: this.past(this.values ?? new Float32Array(0)),
    };
    const started = performance.now();
    const out = await this.session.run(feeds, [wantLogits ? 'logits' : 'next_tokens', 'present_keys', 'present_values']);
    this.seconds += (performance.now() - started) / 1000;
    this.reserve(total);
    for (const [name, store] of [['present_keys', this.keys], ['present_values', this.values]]) {
      const data = out[name].data;
      for (let lh = 0; lh < this.layers * this.heads; lh++) {
        store.set(data.subarray(lh * n * this.dim, (lh + 1) * n * this.dim), (lh * this.capacity + this.length) * this.dim);
      }
      out[name].dispose?.();
    }
    this.length = total;
    if (wantLogits) return { logits: out.logits.data, width: out.logits.dims[2] };
    return { next: Array.from(out.next_tokens.data, Number) };
  }

  // keep entries [0, start) and start + index (increasing), drop the rest: keep_cache_entries
  keep(start, index) {
    for (const store of [this.keys, this.values]) {
      for (let lh = 0; lh < this.layers * this.heads; lh++) {
        const base = lh * this.capacity;
        index.forEach((from, to) => {
          if (from !== to) store.copyWithin((base + start + to) * this.dim, (base + start + from) * this.dim,
            (base + start + from + 1) * this.dim);
        });
      }
    }
    this.length = start + index.length;
  }
}

// ---- the token tree (tree.py) --------------------------------------------------------------
class Tree {
  constructor(root, capacity) {
    this.capacity = capacity;
    this.tokens = [root]; this.parents = [-1]; this.depths = [0]; this.logq = [0]; this.logp = [0];
    this.ancestors = [new Uint8Array(capacity)];
    this.ancestors[0][0] = 1;
  }

  get size() { return this.tokens.length; }
  get depth() { return Math.max(...this.depths); }

  add(parent, token, logq) {
    const i = this.size;
    if (i >= this.capacity) throw new Error(`tree capacity ${this.capacity} exceeded`);
    this.tokens.push(token); this.parents.push(parent); this.depths.push(this.depths[parent] + 1);
    this.logq.push(logq); this.logp.push(this.logp[parent] + logq);
    const row = this.ancestors[parent].slice();
    row[i] = 1;
    this.ancestors.push(row);
    return i;
  }

  acceptedPath(targetNext) {  // TokenTree.accepted_path
    const n = this.size;
    const match = this.tokens.map((t, i) => i === 0 || t === targetNext[this.parents[i]]);
    let deepest = 0;
    for (let i = 0; i < n; i++) {
      let ok = true;
      for (let j = 0; j <= i && ok; j++) if (this.ancestors[i][j] && !match[j]) ok = false;
      if (ok && this.depths[i] > this.depths[deepest]) deepest = i;
    }
    const path = [];
    for (let j = 0; j <= deepest; j++) if (this.ancestors[deepest][j]) path.push(j);
    return path;
  }
}

// ---- growth rules (growth.py) and the history controller (controller.py) ------------------
export function bestDepth(rate, draftCost, maxDepth) {
  let best = 1, bestValue = -1, tokens = 1, term = 1;
  for (let depth = 1; depth <= maxDepth; depth++) {
    term *= rate; tokens += term;
    const value = tokens / (1 + draftCost * depth);
    if (value > bestValue + 1e-12) { best = depth; bestValue = value; }
  }
  return best;
}

function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

class Controller {
  constructor(c) {
    this.c = c; this.baseDepth = c.base_depth; this.thetaHigh = c.theta_high;
    this.history = []; this.passed = 0.5; this.attempted = 1.0;
  }

  get depth() { return roundHalfEven(this.baseDepth); }
  get levelAcceptance() { return this.passed / this.attempted; }

  update(acceptedDepth, draftedDepth) {
    const c = this.c;
    if (!c.adapt || draftedDepth <= 0) return;
    const accepted = Math.min(acceptedDepth, draftedDepth);
    if (c.controller === 'paper') {
      this.history.push(accepted / draftedDepth);
      if (this.history.length > c.history_window) this.history.shift();
      const error = this.history.reduce((a, b) => a + b, 0) / this.history.length - c.target_acceptance;
      this.baseDepth = Math.min(Math.max(this.baseDepth + c.depth_gain * error, 1), c.max_depth);
      this.thetaHigh = Math.min(Math.max(this.thetaHigh - c.theta_gain * error, c.theta_low + 0.01), 0.99);
      return;
    }
    const keep = 1 - 1 / c.history_window;
    this.passed = keep * this.passed + accepted;
    this.attempted = keep * this.attempted + accepted + (accepted < draftedDepth ? 1 : 0);
    this.baseDepth = bestDepth(this.levelAcceptance, c.draft_cost, c.max_depth);
  }
}

function growthRule(method, c, controller, depthCap) {
  const below = (max) => (depth) => depth < max;
  if (method === 'linear') {
    const depth = Math.min(c.k, depthCap);
    return { maxDepth: depth, maxNodes: c.k, maxBranch: 1, threshold: 0, breadth: () => 1, expands: below(depth) };
  }
  if (method === 'fixed') {
    const depth = Math.min(c.depth, depthCap);
    return { maxDepth: depth, maxNodes: c.max_nodes, maxBranch: c.branch, threshold: c.threshold,
      breadth: () => c.branch, expands: below(depth) };
  }
  const maxDepth = Math.min(c.max_depth, depthCap);
  const baseDepth = Math.min(controller.depth, maxDepth);
  const thetaHigh = controller.thetaHigh, logStop = Math.log(c.rho_stop), logDeep = Math.log(c.rho_deep);
  return {
    maxDepth, maxNodes: c.max_nodes, maxBranch: c.max_branch, threshold: c.threshold,
    breadth: (conf) => (conf >= thetaHigh ? c.min_branch : conf < c.theta_low ? c.max_branch : c.mid_branch),
    expands: (depth, logp) => depth < maxDepth && logp >= logStop && (depth < baseDepth || logp > logDeep),
  };
}

function softmaxTop(row, count) {  // float64 softmax over the draft's shortlist, its top `count`
  let max = -Infinity;
  for (const x of row) if (x > max) max = x;
  let sum = 0;
  for (const x of row) sum += Math.exp(x - max);
  const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b).slice(0, count);
  return order.map((i) => ({ index: i, q: Math.exp(row[i] - max) / sum }));
}

function addChildren(tree, frontier, rows, rule, shortlist) {  // drafting._add_children
  const candidates = [];
  frontier.forEach((node, r) => {
    const top = softmaxTop(rows[r], rule.maxBranch);
    const width = rule.breadth(top[0].q);
    top.forEach((t, b) => {
      const logq = Math.log(t.q), logp = tree.logp[node] + logq;
      let keep = b < width;
      if (rule.threshold > 0) keep = keep && logp >= Math.log(rule.threshold);
      candidates.push({ node, token: shortlist[t.index], logq, logp, keep, order: candidates.length });
    });
  });
  let kept = candidates.filter((c) => c.keep);
  const budget = rule.maxNodes + 1 - tree.size;
  if (kept.length > budget) {  // strict node budget: the most probable candidates win
    kept = kept.slice().sort((a, b) => b.logp - a.logp || a.order - b.order).slice(0, budget)
      .sort((a, b) => a.order - b.order);
  }
  return kept.map((c) => tree.add(c.node, c.token, c.logq));  // row-major: BFS order holds
}

// ---- the draft model as a drafter (drafters.ModelDrafter) ---------------------------------
class Drafter {
  constructor(model, shortlist) { this.model = model; this.shortlist = shortlist; this.forwards = 0; }

  reset() { this.model.reset(); this.forwards = 0; this.rank = null; this.fed = []; }

  rows(out, n) {
    const rows = [];
    for (let i = 0; i < n; i++) rows.push(out.logits.subarray(i * out.width, (i + 1) * out.width));
    return rows;
  }

  async begin(sequence, prefixLen) {
    const cached = this.model.length;
    const pending = sequence.slice(cached);
    const start = prefixLen + 1 - pending.length;
    const out = await this.model.run(pending, pending.map((_, i) => start + i), (i, j) => j <= cached + i, true);
    this.forwards++; this.fed = []; this.rank = null;
    return this.rows(out, pending.length).slice(-1);
  }

  async expand(tree, frontier, prefixLen, depth) {
    if (!this.rank) this.rank = new Int32Array(tree.capacity).fill(-1);
    const before = this.fed.length;
    this.fed.push(...frontier);
    frontier.forEach((node, i) => { this.rank[node] = before + i; });
    const order = this.fed, committed = prefixLen + 1;
    const out = await this.model.run(frontier.map((f) => tree.tokens[f]), frontier.map(() => prefixLen + depth),
      (i, j) => j < committed || tree.ancestors[frontier[i]][order[j - committed]] === 1, true);
    this.forwards++;
    return this.rows(out, frontier.length);
  }

  accept(tree, path, prefixLen) {
    if (this.model.length <= prefixLen) return;
    const ranks = this.rank ? path.slice(1).map((i) => this.rank[i]).filter((r) => r >= 0) : [];
    this.model.keep(prefixLen + 1, ranks);
  }
}

// ---- decoding (decode.generate, greedy) ---------------------------------------------------
export class Live {
  constructor(manifest, tokenizer, target, draft) {
    this.manifest = manifest; this.tokenizer = tokenizer;
    this.target = new StepModel(target, manifest.graphs.target);
    this.drafter = new Drafter(new StepModel(draft, manifest.graphs.draft), manifest.graphs.draft.shortlist);
    this.eos = manifest.eos_token_id;
  }

  chatIds(prompt) {  // the target's chat template, add_generation_prompt=True
    const { im_start: start, im_end: end, system } = this.manifest.chat;
    const t = this.tokenizer, nl = t.encode('\n');
    return [start, ...t.encode('system\n' + system), end, ...nl, start, ...t.encode('user\n' + prompt), end, ...nl,
      start, ...t.encode('assistant\n')];
  }

  // ms per forward of n new tokens after `prefix` cached ones (median of `repeats`), both models:
  // the page's own cost curve (chapter 1 measures PyTorch's)
  async stepCosts(sizes = [1, 2, 4, 8, 16, 32], prefix = 64, repeats = 5) {
    const costs = { target: {}, draft: {} };
    for (const [role, model] of [['target', this.target], ['draft', this.drafter.model]]) {
      model.reset();
      const ids = Array.from({ length: prefix }, (_, i) => 100 + i);
      await model.run(ids, ids.map((_, i) => i), (i, j) => j <= i, role === 'draft');
      for (const n of sizes) {
        const times = [];
        for (let r = 0; r < repeats; r++) {
          const started = performance.now();
          await model.run(Array(n).fill(200), Array(n).fill(prefix), () => true, role === 'draft');
          times.push(performance.now() - started);
          model.length = prefix;  // forget the probe's entries
        }
        costs[role][n] = times.sort((a, b) => a - b)[Math.floor(repeats / 2)];
      }
    }
    return costs;
  }

  // method: 'ar' | 'linear' | 'fixed' | 'dynatree'; config: that method's fields (manifest defaults)
  async generate(promptIds, method, config, maxNewTokens, onIteration = null) {
    const started = performance.now();
    let hookTime = 0;
    const hook = async (event) => {
      if (!onIteration) return;
      const t0 = performance.now();
      await onIteration(event);
      hookTime += performance.now() - t0;
    };
    const stats = { targetForwards: 1, draftForwards: 0, iterations: 0, committed: [], treeSizes: [], baseDepth: [] };
    const out = [];
    const finished = () => out.length >= maxNewTokens || (out.length > 0 && out[out.length - 1] === this.eos);
    const commit = (tokens) => {
      let count = 0;
      for (const token of tokens) {
        out.push(token); count++;
        if (token === this.eos || out.length >= maxNewTokens) break;
      }
      return count;
    };
    const target = this.target;
    target.reset();
    const n = promptIds.length;
    const prefill = await target.run(promptIds, promptIds.map((_, i) => i), (i, j) => j <= i, false);
    let root = prefill.next[n - 1];
    commit([root]);
    await hook({ kind: 'token', out });
    if (method === 'ar') {
      while (!finished()) {
        const p = target.length;
        root = (await target.run([root], [p], () => true, false)).next[0];
        stats.targetForwards++;
        commit([root]);
        await hook({ kind: 'token', out });
      }
    } else {
      const controller = method === 'dynatree' ? new Controller(config) : null;
      const drafter = this.drafter;
      drafter.reset();
      const sequence = [...promptIds, root];
      let prefixLen = n;
      while (!finished()) {
        const rule = growthRule(method, config, controller, maxNewTokens - out.length - 1);
        const tree = new Tree(sequence[sequence.length - 1], rule.maxNodes + 1);
        const draftBefore = drafter.forwards;
        if (rule.maxDepth > 0) {  // drafting.draft_tree
          let rows = await drafter.begin(sequence, prefixLen);
          let frontier = [0], depth = 0;
          for (;;) {
            const children = addChildren(tree, frontier, rows, rule, drafter.shortlist);
            depth++;
            await hook({ kind: 'level', tree, depth, controller });
            if (children.length === 0 || tree.size > rule.maxNodes) break;
            frontier = children.filter((c) => rule.expands(depth, tree.logp[c]));
            if (frontier.length === 0) break;
            rows = await drafter.expand(tree, frontier, prefixLen, depth);
          }
        }
        const draftedDepth = tree.depth;
        const next = (await target.run(tree.tokens, tree.depths.map((d) => prefixLen + d),
          (i, j) => j < prefixLen || tree.ancestors[i][j - prefixLen] === 1, false)).next;
        const path = tree.acceptedPath(next);
        const committed = [...path.slice(1).map((i) => tree.tokens[i]), next[path[path.length - 1]]];
        target.keep(prefixLen, path);
        drafter.accept(tree, path, prefixLen);
        const emitted = commit(committed);
        const accepted = Math.min(committed.length - 1, emitted);
        stats.targetForwards++; stats.iterations++;
        stats.draftForwards += drafter.forwards - draftBefore;
        stats.committed.push(emitted); stats.treeSizes.push(tree.size - 1);
        if (controller) stats.baseDepth.push(controller.baseDepth);
        await hook({ kind: 'verified', tree, path, next, committed: committed.slice(0, emitted), out, controller });
        if (controller) controller.update(accepted, draftedDepth);
        prefixLen += committed.length;
        sequence.push(...committed);
      }
    }
    const seconds = (performance.now() - started - hookTime) / 1000;
    return { ids: out, text: this.tokenizer.decode(out), seconds, tokensPerSecond: out.length / seconds,
      tokensPerForward: out.length / stats.targetForwards, targetSeconds: target.seconds,
      draftSeconds: method === 'ar' ? 0 : this.drafter.model.seconds, ...stats };
  }
}

// ---- loading --------------------------------------------------------------------------------
async function fetchBytes(url, onBytes) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value); received += value.length; onBytes(value.length);
  }
  const bytes = new Uint8Array(received);
  let offset = 0;
  for (const chunk of chunks) { bytes.set(chunk, offset); offset += chunk.length; }
  return bytes;
}

// weights.bin holds integer codes (web_export.PackedWeights); each graph's float32 external-data
// file is rebuilt here exactly as web_export.materialize does: x = fp32(fp32(d * q) + m).
function halfToFloat(bits) {
  const sign = bits & 0x8000 ? -1 : 1, exponent = (bits >> 10) & 0x1f, fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

function segment(buffer, entry) {
  const [start, length, dtype] = entry;
  if (dtype === 'uint8') return new Uint8Array(buffer, start, length);
  if (dtype === 'int8') return new Int8Array(buffer, start, length);
  if (dtype === 'float32') return new Float32Array(buffer, start, length / 4);
  if (dtype === 'float16') return Float32Array.from(new Uint16Array(buffer, start, length / 2), halfToFloat);
  throw new Error(`unknown weights dtype ${dtype}`);
}

function decodeInto(out, base, source, layout, buffer) {
  const n = source.rows, k = source.cols, at = layout === 'rows' ? (r, c) => base + r * k + c : (r, c) => base + c * n + r;
  if (source.kind === 'f32') {
    const values = segment(buffer, source.values);
    for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) out[at(r, c)] = values[r * k + c];
    return;
  }
  const blocks = k / 32, codes = segment(buffer, source.codes), scale = segment(buffer, source.scale);
  const scaleBlocks = source.scale[3][1], offset = source.offset ? segment(buffer, source.offset) : null;
  const q4 = source.kind === 'q4';
  for (let r = 0; r < n; r++) {
    for (let b = 0; b < blocks; b++) {
      const d = scale[r * scaleBlocks + (scaleBlocks > 1 ? b : 0)], m = offset ? offset[r * blocks + b] : 0;
      const row = r * blocks + b;
      for (let e = 0; e < 32; e++) {
        const code = q4 ? (codes[row * 16 + (e >> 1)] >> ((e & 1) * 4)) & 15 : codes[row * 32 + e];
        out[at(r, b * 32 + e)] = offset ? Math.fround(d * code) + m : d * code;
      }
    }
  }
}

function materialize(layout, sources, buffer) {
  const out = new Float32Array(layout.bytes / 4);
  for (const tensor of layout.tensors) decodeInto(out, tensor.offset / 4, sources[tensor.source], tensor.layout, buffer);
  return new Uint8Array(out.buffer);
}

export async function load(onProgress = () => {}) {
  if (typeof WebAssembly !== 'object') throw new Error('this browser has no WebAssembly');
  ort.env.wasm.wasmPaths = BASE;
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  const manifest = await (await fetch(BASE + 'manifest.json')).json();
  const graphs = manifest.graphs;
  const total = manifest.weights_bytes + graphs.target.bytes + graphs.draft.bytes;
  let done = 0;
  const count = (bytes) => { done += bytes; onProgress(done, total, 'downloading'); };
  const tokenizer = new Tokenizer(await (await fetch(BASE + 'tokenizer.json')).json());
  const packed = (await fetchBytes(BASE + 'weights.bin', count)).buffer;
  const sessions = {};
  for (const role of ['target', 'draft']) {
    const graph = await fetchBytes(BASE + graphs[role].file, count);
    onProgress(done, total, `expanding the ${role}'s weights`);
    await nextFrame();
    const data = materialize(graphs[role].external, manifest.sources, packed);
    sessions[role] = await ort.InferenceSession.create(graph, {
      executionProviders: ['wasm'], graphOptimizationLevel: 'all',
      externalData: [{ path: graphs[role].external.file, data }] });
  }
  return new Live(manifest, tokenizer, sessions.target, sessions.draft);
}

export const threads = () => ort.env.wasm.numThreads;

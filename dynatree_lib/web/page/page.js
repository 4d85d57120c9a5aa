// The live page's controls, tree drawing and measurements; the decoder is live.js.
import { load, threads } from './live.js';

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const SVG = 'http://www.w3.org/2000/svg';
let live = null;
let busy = false;

function show(message, isError = false) {
  $(isError ? 'error' : 'status').textContent = message;
  if (!isError) $('error').textContent = '';
}

// ---- knobs: the manifest's defaults (the library's dataclass defaults), validated as methods.py
function fillDefaults(defaults) {
  for (const fieldset of document.querySelectorAll('fieldset[data-method]')) {
    const values = defaults[fieldset.dataset.method];
    for (const input of fieldset.querySelectorAll('[data-knob]')) {
      const value = values[input.dataset.knob];
      if (input.type === 'checkbox') input.checked = value; else input.value = value;
    }
  }
  showMethod();
}

function showMethod() {
  const method = $('method').value;
  for (const fieldset of document.querySelectorAll('fieldset[data-method]')) {
    fieldset.hidden = fieldset.dataset.method !== method;
  }
}

export function readConfig(method, overrides = {}) {
  if (method === 'ar') return {};
  const config = { ...live.manifest.defaults[method] };
  const fieldset = document.querySelector(`fieldset[data-method="${method}"]`);
  for (const input of fieldset.querySelectorAll('[data-knob]')) {
    const knob = input.dataset.knob;
    config[knob] = input.type === 'checkbox' ? input.checked : input.tagName === 'SELECT' ? input.value : Number(input.value);
  }
  Object.assign(config, overrides);
  validate(config);
  return config;
}

function validate(c) {
  const ints = ['k', 'depth', 'branch', 'max_nodes', 'base_depth', 'max_depth', 'min_branch', 'mid_branch', 'max_branch'];
  for (const name of ints) {
    if (name in c && !(Number.isInteger(c[name]) && c[name] >= 1)) throw new Error(`${name} must be an integer >= 1, got ${c[name]}`);
  }
  for (const name of ['threshold', 'theta_high', 'theta_low', 'rho_stop', 'rho_deep']) {
    if (name in c && !(c[name] > 0 && c[name] < 1)) throw new Error(`${name} must lie in (0, 1), got ${c[name]}`);
  }
  if ('max_nodes' in c && c.max_nodes > 256) throw new Error(`max_nodes must be <= 256 here, got ${c.max_nodes}`);
  if ('theta_low' in c && c.theta_low >= c.theta_high) throw new Error(`theta_low (${c.theta_low}) must be < theta_high (${c.theta_high})`);
  if ('rho_stop' in c && c.rho_stop > c.rho_deep) throw new Error(`rho_stop (${c.rho_stop}) must be <= rho_deep (${c.rho_deep})`);
  if ('base_depth' in c && c.base_depth > c.max_depth) throw new Error(`base_depth (${c.base_depth}) must be <= max_depth (${c.max_depth})`);
  if ('min_branch' in c && !(c.min_branch <= c.mid_branch && c.mid_branch <= c.max_branch)) {
    throw new Error(`branches must satisfy min_branch <= mid_branch <= max_branch, got ${c.min_branch}, ${c.mid_branch}, ${c.max_branch}`);
  }
  if ('draft_cost' in c && !(c.draft_cost >= 0)) throw new Error(`draft_cost must be a number >= 0, got ${c.draft_cost}`);
}

function maxNewTokens() {
  const value = Number($('max_new_tokens').value);
  if (!Number.isInteger(value) || value < 1 || value > 512) throw new Error(`new tokens must be an integer in 1..512, got ${$('max_new_tokens').value}`);
  return value;
}

// ---- the tree, drawn as it grows ---------------------------------------------------------
function drawTree(tree, path = null, bonus = null) {
  const svg = $('tree');
  svg.replaceChildren();
  const columns = [];
  const place = tree.tokens.map((_, i) => {
    const d = tree.depths[i];
    columns[d] = (columns[d] ?? 0) + 1;
    return { x: 8 + d * 96, y: 6 + (columns[d] - 1) * 22 };
  });
  const accepted = new Set(path ?? []);
  const rows = Math.max(...columns, 1);
  const width = 8 + (tree.depth + 2) * 96;
  svg.setAttribute('viewBox', `0 0 ${Math.max(width, 400)} ${Math.max(rows * 22 + 12, 60)}`);
  svg.style.height = `${Math.min(Math.max(rows * 22 + 12, 80), 520)}px`;
  const add = (name, attrs, text) => {
    const el = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    svg.appendChild(el);
    return el;
  };
  tree.parents.forEach((p, i) => {
    if (p >= 0) add('line', { x1: place[p].x + 84, y1: place[p].y + 9, x2: place[i].x, y2: place[i].y + 9 });
  });
  const node = (x, y, cls, label, title) => {
    const rect = add('rect', { x, y, width: 84, height: 18, rx: 3, class: cls });
    add('title', {}, title);
    rect.appendChild(svg.lastChild);
    add('text', { x: x + 4, y: y + 9.5 }, label.length > 11 ? label.slice(0, 10) + '\u2026' : label);
  };
  tree.tokens.forEach((token, i) => {
    const cls = i === 0 ? 'root' : accepted.has(i) ? 'accepted' : 'drafted';
    const q = Math.exp(tree.logq[i]).toFixed(2), p = Math.exp(tree.logp[i]).toFixed(2);
    node(place[i].x, place[i].y, cls, live.tokenizer.piece(token), `${live.tokenizer.piece(token)}  q=${q}  p(path)=${p}`);
  });
  if (path && bonus !== null) {
    const last = place[path[path.length - 1]];
    add('line', { x1: last.x + 84, y1: last.y + 9, x2: last.x + 96, y2: last.y + 9 });
    node(last.x + 96, last.y, 'bonus', live.tokenizer.piece(bonus), 'the target\'s next token');
  }
}

function statsTable(rows) {
  const head = '<tr><th>method</th><th>tokens</th><th>target fwd</th><th>tokens / fwd</th>' +
    '<th>draft fwd</th><th>target / draft s</th><th>tokens/s</th><th>vs AR</th><th>same as AR</th></tr>';
  $('stats').innerHTML = '<table>' + head + rows.map((r) => `<tr><td>${r.method}</td><td>${r.ids.length}</td>` +
    `<td>${r.targetForwards}</td><td>${r.tokensPerForward.toFixed(2)}</td><td>${r.draftForwards}</td>` +
    `<td>${r.targetSeconds.toFixed(2)} / ${r.draftSeconds.toFixed(2)}</td>` +
    `<td>${r.tokensPerSecond.toFixed(1)}</td><td>${r.speedup ?? ''}</td><td>${r.identical ?? ''}</td></tr>`).join('') + '</table>';
}

// ---- runs ------------------------------------------------------------------------------------
export async function generate({ prompt, method, config = {}, maxNewTokens = 32, draw = false, onIteration = null }) {
  const ids = live.chatIds(prompt);
  const full = readConfig(method, config);
  const slow = draw && $('slow').checked;
  const started = performance.now();
  const hook = draw ? async (event) => {
    // a root-only tree (the last token, or a depth cut to zero) keeps the previous drawing
    if (event.kind === 'level') drawTree(event.tree);
    if (event.kind === 'verified' && event.tree.size > 1) {
      drawTree(event.tree, event.path, event.committed.length >= event.path.length ? event.committed[event.committed.length - 1] : null);
    }
    if (event.kind === 'verified') {
      const d0 = event.controller ? `, D\u2080 = ${event.controller.depth}, a = ${event.controller.levelAcceptance.toFixed(2)}` : '';
      const rate = event.out.length / ((performance.now() - started) / 1000);
      show(`${method}: ${event.out.length}/${maxNewTokens} tokens (${rate.toFixed(1)} tokens/s with drawing); ` +
        `this tree: ${event.tree.size - 1} nodes, depth ${event.tree.depth}, ${event.committed.length} committed${d0}`);
    }
    if (event.kind !== 'level') $('text').textContent = live.tokenizer.decode(event.out);
    await sleep(slow && event.kind === 'level' ? 300 : 0);
  } : onIteration;
  const result = await live.generate(ids, method, full, maxNewTokens, hook);
  return { method, promptIds: ids, ...result };
}

async function guarded(work) {
  if (busy) return;
  busy = true;
  $('run').disabled = $('compare').disabled = true;
  try {
    await work();
  } catch (error) {
    show(String(error.message ?? error), true);
  } finally {
    busy = false;
    $('run').disabled = $('compare').disabled = false;
  }
}

async function onRun() {
  await guarded(async () => {
    const method = $('method').value;
    const request = { prompt: $('prompt').value, method, maxNewTokens: maxNewTokens(), draw: true };
    readConfig(method);  // invalid settings stop here, before any forward
    $('outputs').hidden = false;
    const result = await generate(request);
    statsTable([{ ...result, method }]);
    $('text').textContent = result.text;
    show(`done: ${result.ids.length} tokens in ${result.seconds.toFixed(1)} s (${threads()} wasm thread${threads() > 1 ? 's' : ''})`);
  });
}

async function onCompare() {
  await guarded(async () => {
    const method = $('method').value;
    const request = { prompt: $('prompt').value, method, maxNewTokens: maxNewTokens() };
    readConfig(method);
    $('outputs').hidden = false;
    show('greedy AR (the reference)...');
    const ar = await generate({ ...request, method: 'ar' });
    show(`${method}...`);
    const other = method === 'ar' ? ar : await generate(request);
    other.identical = String(other.ids.length === ar.ids.length && other.ids.every((t, i) => t === ar.ids[i]));
    other.speedup = (other.tokensPerSecond / ar.tokensPerSecond).toFixed(2) + 'x';
    statsTable(method === 'ar' ? [ar] : [{ ...ar, speedup: '1.00x', identical: 'true' }, other]);
    $('text').textContent = other.text;
    show(`measured on this machine, ${threads()} wasm thread${threads() > 1 ? 's' : ''}, no drawing`);
  });
}

async function onLoad() {
  $('load').disabled = true;
  $('progress').hidden = false;
  try {
    live = await load((done, total, what) => {
      $('progress').value = done / total;
      show(`${what}: ${(done / 1e6).toFixed(0)} / ${(total / 1e6).toFixed(0)} MB`);
    });
    fillDefaults(live.manifest.defaults);
    $('controls').hidden = false;
    $('loader').hidden = true;
    show('ready');
    window.dynatreeLive.ready = true;
  } catch (error) {
    $('load').disabled = false;
    show(`The live decoder could not load here: ${error.message ?? error}. ` +
      'The precomputed explorer on this page shows measured trees instead.', true);
  }
}

async function init() {
  try {
    const manifest = await (await fetch('manifest.json')).json();
    const g = manifest.graphs, mb = (manifest.weights_bytes + g.target.bytes + g.draft.bytes) / 1e6;
    const memory = (g.target.external.bytes + g.draft.external.bytes) / 1e9;
    $('sizes').textContent = `${mb.toFixed(0)} MB to download (4-bit and 8-bit weights, fetched once per visit), ` +
      `about ${memory.toFixed(1)} GB of memory once expanded to float32`;
  } catch (error) {
    $('load').disabled = true;
    show('The live decoder\'s files are not on this site (python -m dynatree_lib export-web builds them).', true);
  }
}

window.dynatreeLive = { ready: false, load: onLoad, generate, readConfig, chatIds: (p) => live.chatIds(p),
  encode: (t) => live.tokenizer.encode(t), threads, stepCosts: () => live.stepCosts() };
$('load').addEventListener('click', onLoad);
$('method').addEventListener('change', showMethod);
$('run').addEventListener('click', onRun);
$('compare').addEventListener('click', onCompare);
init();

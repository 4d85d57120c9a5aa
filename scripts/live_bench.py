"""Chapter 4b's live page measured in headless Chromium: tokens/s of every method in the page.

    python scripts/live_bench.py                  # exports the page (cached), ~6 min
    python scripts/live_bench.py --live-dir site/_build/html/live

Spec-Bench questions (``--per-group`` of each of the six task groups, first turns, chat template)
after one warm-up question; every method on every question in one browser session, the order
rotated per question; greedy, stops at EOS or ``--max-new-tokens``. Writes
``results/live_browser_embedded_cpu.json`` (``--isolated``: ``..._isolated.json``): per question
and method the tokens, tokens/s (prefill
included, as the page reports), target and draft forwards, and whether the tokens equal the
page's AR; the summary has each method's mean speedup over in-page AR with a paired bootstrap
interval over questions. Needs Debian's chromium and the playwright package (the test set-up).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHODS = ["ar", "linear", "fixed", "dynatree"]
GENERATE = """async ([prompt, method, tokens]) => {
  const r = await window.dynatreeLive.generate({prompt, method, maxNewTokens: tokens});
  return {ids: r.ids, seconds: r.seconds, tokens_per_second: r.tokensPerSecond,
          target_forwards: r.targetForwards, draft_forwards: r.draftForwards,
          target_seconds: r.targetSeconds, draft_seconds: r.draftSeconds, iterations: r.iterations,
          tree_nodes: r.treeSizes.reduce((a, b) => a + b, 0), prompt_tokens: r.promptIds.length};
}"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    isolated = False

    def log_message(self, *args) -> None:
        pass

    def end_headers(self) -> None:
        if self.isolated:  # cross-origin isolation: SharedArrayBuffer, hence wasm threads
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()


class _Isolated(_Quiet):
    isolated = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--live-dir", type=Path, help="an exported live page (default: export one)")
    parser.add_argument("--per-group", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--isolated", action="store_true",
                        help="serve with cross-origin isolation headers (COOP/COEP), as a host can: "
                             "the page then runs onnxruntime-web with up to 4 threads")
    parser.add_argument("--out", type=Path,
                        help="default: results/live_browser_embedded_cpu[_isolated].json")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from dynatree_lib.harness.data import spec_bench_questions
    from dynatree_lib.harness.paired import paired_difference
    from dynatree_lib.harness.spec_bench import stratified
    from dynatree_lib.web.export import export_web

    live = args.live_dir
    if live is None:
        live = Path(tempfile.mkdtemp()) / "live"
        export_web(live)
    manifest = json.loads((live / "manifest.json").read_text())
    measured, warmup = stratified(args.per_group, 1, args.seed)
    assert spec_bench_questions  # the questions are the benchmark's (data/spec_bench)
    stem = "live_browser_embedded_cpu" + ("_isolated" if args.isolated else "")
    out = args.out or ROOT / "results" / f"{stem}.json"
    handler = functools.partial(_Isolated if args.isolated else _Quiet, directory=str(live))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    records = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{server.server_port}/index.html")
        started = time.time()
        page.click("#load")
        page.wait_for_function("window.dynatreeLive.ready || document.getElementById('error').textContent",
                               timeout=300_000)
        if page.inner_text("#error"):
            raise SystemExit(page.inner_text("#error"))
        load_seconds = time.time() - started
        threads = page.evaluate("window.dynatreeLive.threads()")
        costs = page.evaluate("window.dynatreeLive.stepCosts()")
        for method in METHODS:  # warm-up: not recorded
            page.evaluate(GENERATE, [warmup[0].turns[0], method, args.max_new_tokens])
        for index, question in enumerate(measured):
            order = METHODS[index % len(METHODS):] + METHODS[:index % len(METHODS)]
            runs = {m: page.evaluate(GENERATE, [question.turns[0], m, args.max_new_tokens]) for m in order}
            for method in METHODS:
                run = runs[method]
                records.append({"prompt_index": index, "question_id": question.question_id,
                                "group": question.group, "method": method, "new_tokens": len(run["ids"]),
                                "tokens_per_second": run["tokens_per_second"], "seconds": run["seconds"],
                                **{key: run[key] for key in ("target_forwards", "draft_forwards",
                                                             "target_seconds", "draft_seconds", "iterations",
                                                             "tree_nodes", "prompt_tokens")},
                                "tau": len(run["ids"]) / run["target_forwards"],
                                "identical_to_ar": run["ids"] == runs["ar"]["ids"],
                                "speedup": run["tokens_per_second"] / runs["ar"]["tokens_per_second"]})
            print(f"question {index + 1}/{len(measured)} ({question.group}): " + ", ".join(
                f"{m} {runs[m]['tokens_per_second']:.1f} tok/s" for m in METHODS), flush=True)
        version = browser.version
        browser.close()
    server.shutdown()
    doc = {"command": " ".join(["python scripts/live_bench.py", *sys.argv[1:]]),
           "date": time.strftime("%Y-%m-%d"), "browser": f"Chromium {version} (headless)",
           "runtime": manifest["runtime"], "wasm_threads": threads, "cross_origin_isolated": args.isolated,
           "load_seconds": round(load_seconds, 1), "step_ms": costs,
           "cpu": _cpu(), "machine": platform.machine(), "max_new_tokens": args.max_new_tokens,
           "defaults": manifest["defaults"], "download_bytes": manifest["weights_bytes"] + sum(
               g["bytes"] for g in manifest["graphs"].values()), "records": records}
    doc["summary"] = {}
    for method in METHODS:
        rows = [r for r in records if r["method"] == method]
        entry = {"mean_speedup": sum(r["speedup"] for r in rows) / len(rows),
                 "mean_tokens_per_second": sum(r["tokens_per_second"] for r in rows) / len(rows),
                 "tau": sum(r["new_tokens"] for r in rows) / sum(r["target_forwards"] for r in rows),
                 "all_identical": all(r["identical_to_ar"] for r in rows)}
        if method != "ar":
            entry["speedup_minus_ar"] = paired_difference({"records": records}, method, "ar")
        doc["summary"][method] = entry
    out.write_text(json.dumps(doc, indent=1) + "\n")
    for method, entry in doc["summary"].items():
        print(f"{method:>9}: {entry['mean_speedup']:.2f}x AR, {entry['mean_tokens_per_second']:.1f} tok/s, "
              f"tau {entry['tau']:.2f}, identical {entry['all_identical']}")
    print("ms per forward of n tokens after 64 cached:", json.dumps(costs))
    print(f"wrote {out}")


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown"


if __name__ == "__main__":
    main()

"""Draw the README's picture, speedups over our AR by workload, from the committed results files.

    python scripts/readme_image.py           # write book/img/speedups.svg
    python scripts/readme_image.py --check   # exit 1 if the picture is stale (tests run this)

A plain SVG (no plotting library, no browser): the same files give the same bytes, so a test can
tell when a results file changed and the picture did not.
"""

import sys
from pathlib import Path

from dynatree_lib.book.numbers import book_numbers

IMAGE = Path(__file__).resolve().parent.parent / "book" / "img" / "speedups.svg"
WORKLOADS = [("ms_sb", "Spec-Bench chat"), ("ms_wt", "WikiText-2"),
             ("ms_s07", "Spec-Bench, sampling (temp. 0.7)")]
METHODS = [("default_head", "the default: DynaTree + lookup, priced", "#2ca02c"),
           ("prompt_lookup", "prompt lookup (HF; greedy only)", "#ff7f0e"),
           ("dynatree_head", "the paper's DynaTree", "#1f77b4")]
WIDTH, HEIGHT, LEFT, TOP, BOTTOM = 860, 380, 60, 58, 300


def svg(numbers: dict) -> str:
    values = {(w, m): numbers[f"{w}_{m}_speedup"] for w, _ in WORKLOADS for m, _, _ in METHODS
              if f"{w}_{m}_speedup" in numbers}   # prompt lookup does not sample
    top = max(1.0, max(values.values())) * 1.15
    y = lambda v: BOTTOM - (BOTTOM - TOP) * v / top  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="13">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
             f'<text x="{LEFT}" y="24" font-size="16" font-weight="bold">Speedup over our '
             'autoregressive decoding, embedded pair, feature head, CPU, float32</text>',
             f'<text x="{LEFT}" y="44" fill="#555">greedy outputs identical to AR; '
             f'results/multisource_*.json, drawn by scripts/readme_image.py</text>']
    tick = 0.0
    while tick <= top:
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - 20}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                     f'stroke="#e5e5e5"/><text x="{LEFT - 8}" y="{y(tick) + 4:.1f}" text-anchor="end" '
                     f'fill="#555">{tick:.1f}x</text>')
        tick += 0.5
    parts.append(f'<line x1="{LEFT}" x2="{WIDTH - 20}" y1="{y(1):.1f}" y2="{y(1):.1f}" stroke="#333" '
                 'stroke-dasharray="5,4"/>')
    group = (WIDTH - 20 - LEFT) / len(WORKLOADS)
    bar = group * 0.8 / len(METHODS)
    for g, (workload, title) in enumerate(WORKLOADS):
        x0 = LEFT + g * group + group * 0.1
        for b, (method, _, colour) in enumerate(METHODS):
            if (workload, method) not in values:
                continue
            v, x = values[(workload, method)], x0 + b * bar
            parts.append(f'<rect x="{x:.1f}" y="{y(v):.1f}" width="{bar - 4:.1f}" '
                         f'height="{BOTTOM - y(v):.1f}" fill="{colour}"/>'
                         f'<text x="{x + (bar - 4) / 2:.1f}" y="{y(v) - 5:.1f}" text-anchor="middle" '
                         'stroke="white" stroke-width="3" paint-order="stroke">'
                         f'{v:.2f}</text>')
        parts.append(f'<text x="{LEFT + (g + 0.5) * group:.1f}" y="{BOTTOM + 20}" text-anchor="middle" '
                     f'font-weight="bold">{title}</text>')
    for b, (_, label, colour) in enumerate(METHODS):
        x, row = LEFT + (b % 2) * 300, BOTTOM + 45 + (b // 2) * 20
        parts.append(f'<rect x="{x}" y="{row - 11}" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{x + 18}" y="{row}">{label}</text>')
    parts.append(f'<line x1="{LEFT + 600}" x2="{LEFT + 630}" y1="{BOTTOM + 40}" y2="{BOTTOM + 40}" '
                 f'stroke="#333" stroke-dasharray="5,4"/><text x="{LEFT + 638}" y="{BOTTOM + 45}">'
                 'our AR (= 1)</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(check: bool) -> int:
    new = svg(book_numbers())
    if check:
        if not IMAGE.exists() or IMAGE.read_text() != new:
            print(f"{IMAGE.name} is stale: run python scripts/readme_image.py")
            return 1
        return 0
    IMAGE.write_text(new)
    print(f"wrote {IMAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv[1:]))

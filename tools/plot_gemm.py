"""Plot GFLOP/s against matrix size (clnet and numpy/OpenBLAS) as an SVG.

Reads the CSV that tools/bench_gemm.py --csv writes (square sizes only) and
writes a dependency-free SVG line chart:

    python tools/bench_gemm.py --csv gemm.csv
    python tools/plot_gemm.py gemm.csv docs/gemm_gflops.svg --title "PoCL 3.1, 2 cores"
"""
from __future__ import annotations

import argparse
import csv
import math

WIDTH, HEIGHT, PAD = 640, 400, 60
SERIES = (("cl_gflops", "clnet gemm.cl", "#d62728"), ("np_gflops", "numpy (OpenBLAS)", "#1f77b4"))


def read_square(path: str) -> list:
    with open(path) as f:
        rows = [r for r in csv.DictReader(f) if r["M"] == r["N"] == r["K"]]
    return sorted(rows, key=lambda r: int(r["M"]))


def svg_chart(rows: list, title: str) -> str:
    sizes = [int(r["M"]) for r in rows]
    top = max(float(r[key]) for r in rows for key, _, _ in SERIES) * 1.1
    lo, hi = math.log2(min(sizes)), math.log2(max(sizes))

    def x(size: int) -> float:
        return PAD + (math.log2(size) - lo) / max(hi - lo, 1e-9) * (WIDTH - 2 * PAD)

    def y(value: float) -> float:
        return HEIGHT - PAD - value / top * (HEIGHT - 2 * PAD)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
             f'<text x="{WIDTH / 2}" y="24" text-anchor="middle" font-size="14">{title}</text>',
             f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
             f'stroke="black"/>',
             f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="black"/>',
             f'<text x="{WIDTH / 2}" y="{HEIGHT - 15}" text-anchor="middle">n (M = N = K)</text>',
             f'<text x="15" y="{HEIGHT / 2}" transform="rotate(-90 15 {HEIGHT / 2})" '
             f'text-anchor="middle">GFLOP/s</text>']
    for size in sizes:
        parts.append(f'<text x="{x(size):.1f}" y="{HEIGHT - PAD + 18}" '
                     f'text-anchor="middle">{size}</text>')
    step = 10 ** math.floor(math.log10(top / 2)) * (5 if top / 10 ** math.floor(
        math.log10(top)) > 5 else 2)
    tick = 0.0
    while tick <= top:
        parts.append(f'<text x="{PAD - 8}" y="{y(tick) + 4:.1f}" text-anchor="end">'
                     f'{tick:g}</text>')
        parts.append(f'<line x1="{PAD}" y1="{y(tick):.1f}" x2="{WIDTH - PAD}" '
                     f'y2="{y(tick):.1f}" stroke="#ddd"/>')
        tick += step
    for index, (key, label, color) in enumerate(SERIES):
        points = " ".join(f"{x(int(r['M'])):.1f},{y(float(r[key])):.1f}" for r in rows)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" '
                     f'stroke-width="2"/>')
        for r in rows:
            parts.append(f'<circle cx="{x(int(r["M"])):.1f}" cy="{y(float(r[key])):.1f}" '
                         f'r="3" fill="{color}"/>')
        parts.append(f'<text x="{PAD + 10}" y="{PAD + 16 * index}" fill="{color}">'
                     f'{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("out")
    ap.add_argument("--title", default="SGEMM, clnet vs numpy")
    args = ap.parse_args()
    with open(args.out, "w") as f:
        f.write(svg_chart(read_square(args.csv), args.title))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Milliseconds per curves picture (app.jobs.curves.render), SVG and PNG, by history length.

Two panels (loss, accuracy; training and validation) and one attempt boundary, like a resumed
classification job. The first render of a process (matplotlib import, font cache) is reported
apart. Baseline in the same run: a JSON encode of the same epochs (what /metrics sends).

    PYTHONPATH=. .venv/bin/python bench/curves_render.py [--repeat 20]
"""

import argparse
import json
import statistics
import time

from app.jobs.curves import EpochPoint, Format, render


def history(epochs: int) -> list[EpochPoint]:
    return [
        EpochPoint(n, 1 if n <= epochs // 2 else 2, {"loss": 1 / n, "accuracy": 1 - 1 / n, "val_loss": 1.2 / n})
        for n in range(1, epochs + 1)
    ]


def timed_ms(action, repeat: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    began = time.perf_counter()
    render("first", history(10), Format.SVG)
    print(f"first render in a process (imports matplotlib): {(time.perf_counter() - began) * 1000:.0f} ms")
    print("| epochs | SVG ms | SVG bytes | PNG ms | PNG bytes | JSON encode ms |\n|---|---|---|---|---|---|")
    for epochs in (10, 100, 1000):
        points = history(epochs)
        svg = len(render("t", points, Format.SVG))
        png = len(render("t", points, Format.PNG))
        svg_ms = timed_ms(lambda p=points: render("t", p, Format.SVG), args.repeat)
        png_ms = timed_ms(lambda p=points: render("t", p, Format.PNG), args.repeat)
        json_ms = timed_ms(lambda p=points: json.dumps([x.logs for x in p]), args.repeat)
        print(f"| {epochs} | {svg_ms:.1f} | {svg:,} | {png_ms:.1f} | {png:,} | {json_ms:.2f} |")


if __name__ == "__main__":
    main()

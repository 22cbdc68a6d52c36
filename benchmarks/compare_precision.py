"""Two studies' headline figures side by side (e.g. the same study in --precision fp32 and bf16).

    .venv/bin/python benchmarks/compare_precision.py A/results B/results --model-id TinyCLIP-embedded [--labels fp32,bf16]

Per run present in both results roots, every headline figure of the protocol's evaluations (test
accuracy %, normalised where the report normalises) from each root and their difference B - A,
then the largest absolute difference per figure. Reads results files only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _read(root: Path, model_id: str, run: str, evaluation: str) -> dict | None:
    path = root / model_id / run / f"{evaluation}.json"
    return json.loads(path.read_text())["results"] if path.is_file() else None


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def figures(root: Path, model_id: str, run: str) -> dict[str, float]:
    """The headline figures of one run, in %."""
    out: dict[str, float] = {}
    if (r := _read(root, model_id, run, "single_task")) is not None:
        out["single-task test acc"] = 100 * _mean([v["test"]["accuracy"] for v in r["finetuned"].values()])
    if (r := _read(root, model_id, run, "addition")) is not None:
        for kind in ("tuned", "one_shot"):
            out[f"addition {kind} abs"] = 100 * r[kind]["test"]["avg_accuracy"]
            out[f"addition {kind} norm"] = 100 * r[kind]["test"]["avg_normalized"]
        out["addition tuned alpha"] = 100 * r["tuned"]["alpha"]
    if (r := _read(root, model_id, run, "negation")) is not None:
        out["negation target"] = 100 * r["average"]["target_test"]
        out["negation control"] = 100 * r["average"]["control_test"]
    if (r := _read(root, model_id, run, "pairs")) is not None:
        pairs = r["pairs"].values()
        out["pairs tuned norm"] = 100 * _mean([p["tuned"]["test"]["avg_normalized"] for p in pairs])
        out["pairs one-shot norm"] = 100 * _mean([p["one_shot"]["test"]["avg_normalized"] for p in pairs])
    if (r := _read(root, model_id, run, "tau_jp")) is not None:
        out["tau-Jp off-diagonal mean (x100)"] = 100 * (r["off_diagonal_mean"] or 0.0)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--model-id", required=True)
    p.add_argument("--labels", default="A,B")
    args = p.parse_args()
    la, lb = args.labels.split(",")
    runs = sorted({d.name for d in (args.a / args.model_id).iterdir() if d.is_dir()} & {d.name for d in (args.b / args.model_id).iterdir() if d.is_dir()})
    runs = [r for r in runs if r != "report"]
    worst: dict[str, tuple[float, str]] = {}
    print(f"{'run':<16}{'figure':<32}{la:>9}{lb:>9}{lb + ' - ' + la:>12}")
    for run in runs:
        fa, fb = figures(args.a, args.model_id, run), figures(args.b, args.model_id, run)
        for name in fa:
            if name not in fb:
                continue
            diff = fb[name] - fa[name]
            print(f"{run:<16}{name:<32}{fa[name]:9.1f}{fb[name]:9.1f}{diff:+12.1f}")
            if name not in worst or abs(diff) > abs(worst[name][0]):
                worst[name] = (diff, run)
    print("\nlargest difference per figure:")
    for name, (diff, run) in worst.items():
        print(f"  {name:<32}{diff:+7.1f} ({run})")


if __name__ == "__main__":
    main()

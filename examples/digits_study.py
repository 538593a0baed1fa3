"""The README's 20-trial study on the digits data, against a running `trainyard serve`: upload
examples/digits.csv, start the study, wait for it, and print its trials as a Markdown table.

    .venv/bin/python examples/make_digits_dataset.py
    .venv/bin/python examples/digits_study.py [--url http://127.0.0.1:8000] [--seed 7]

The study is the one the README shows (units, learning rate and optimizer of a one-hidden-layer
MLP; TPE with the median pruner; 20 trials, 3 at a time).
"""

import argparse
import sys
import time
from pathlib import Path

import httpx

STUDY = {
    "name": "digits-search",
    "register_as": "digits",
    "base": {
        "model": {
            "layers": [
                {"type": "Dense", "units": 64, "activation": "relu"},
                {"type": "Dense", "units": 10, "activation": "softmax"},
            ]
        },
        "compile": {
            "optimizer": {"type": "Adam", "learning_rate": 0.001},
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
        },
        "fit": {"epochs": 5, "validation_split": 0.2},
    },
    "search_space": {
        "/model/layers/0/units": {"type": "int", "low": 16, "high": 256, "log": True},
        "/compile/optimizer/learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "/compile/optimizer/type": {"type": "categorical", "choices": ["Adam", "SGD", "RMSprop"]},
    },
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
    "sampler": "tpe",
    "pruner": "median",
    "max_trials": 20,
    "parallelism": 3,
}
FINAL = {"succeeded", "failed", "cancelled"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--data", type=Path, default=Path(__file__).parent / "digits.csv")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout-s", type=float, default=3600)
    args = parser.parse_args()
    with httpx.Client(base_url=args.url, timeout=60) as client:
        with args.data.open("rb") as data:
            uploaded = client.post("/v1/datasets", files={"file": (args.data.name, data)}, data={"name": "digits"})
        uploaded.raise_for_status()
        started = time.monotonic()
        created = client.post("/v1/studies", json={**STUDY, "dataset_id": uploaded.json()["id"], "seed": args.seed})
        created.raise_for_status()
        study = created.json()
        while study["status"] not in FINAL:
            if time.monotonic() - started > args.timeout_s:
                sys.exit(f"the study {study['id']} did not end within {args.timeout_s:.0f} s")
            time.sleep(2)
            study = client.get(f"/v1/studies/{study['id']}").raise_for_status().json()
    print_table(study, time.monotonic() - started)


def print_table(study: dict, wall_s: float) -> None:
    print("| trial | units | learning rate | optimizer | epochs run | val_accuracy | status |")
    print("|---|---|---|---|---|---|---|")
    for trial in study["trials"]:
        params = trial["params"]
        value = trial["value"]
        if value is None and trial["intermediate"]:  # a pruned trial: its last reported epoch
            value = trial["intermediate"][max(trial["intermediate"], key=int)]
        print(
            f"| {trial['number']} | {params['/model/layers/0/units']} "
            f"| {params['/compile/optimizer/learning_rate']:.2g} | {params['/compile/optimizer/type']} "
            f"| {len(trial['intermediate'])} | {'' if value is None else f'{value:.3f}'} | {trial['status']} |"
        )
    best = study["best_trial"]
    print(f"\nstudy {study['status']} in {wall_s:.0f} s; best: trial {best and best['number']}, model {study['model']}")


if __name__ == "__main__":
    main()

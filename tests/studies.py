"""Study requests for the studies tests and bench: small MLPs on `csv_bytes()` datasets."""

from typing import Any

from tests.factories import mlp_layers


def base_request(epochs: int = 2, **fit: Any) -> dict[str, Any]:
    """A job request without dataset_id whose optimizer is an object (so a space can set its fields)."""
    return {
        "model": {"layers": mlp_layers(hidden=8)},
        "compile": {
            "optimizer": {"type": "Adam", "learning_rate": 0.01},
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
        },
        "fit": {"epochs": epochs, "batch_size": 32, "validation_split": 0.25, **fit},
    }


def study_request(dataset_id: str, **overrides: Any) -> dict[str, Any]:
    """A study over units, learning rate and optimizer, maximizing val_accuracy."""
    request: dict[str, Any] = {
        "name": "tiny-study",
        "dataset_id": dataset_id,
        "base": base_request(),
        "search_space": {
            "/model/layers/0/units": {"type": "int", "low": 4, "high": 32, "log": True},
            "/compile/optimizer/learning_rate": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
            "/compile/optimizer/type": {"type": "categorical", "choices": ["Adam", "RMSprop"]},
        },
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "sampler": "random",
        "max_trials": 4,
        "parallelism": 2,
        "seed": 7,
    }
    request.update(overrides)
    return request

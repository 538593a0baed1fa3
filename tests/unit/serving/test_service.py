"""The serving service on a real exported model: batched answers equal unbatched ones."""

import asyncio
import threading

import numpy as np
import pytest
from prometheus_client import REGISTRY

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.serving.lookup import registry_lookup
from app.serving.service import ServingService
from tests.factories import register_version, seed_mlp


def inference_calls() -> float:
    labels = {"model": "mlp", "version": "1"}
    return REGISTRY.get_sample_value("trainyard_batch_size_rows_count", labels) or 0.0


# The cut-off between inline and threaded inference, far on either side of any real timing, so
# the test chooses the path and checks where inference then runs, not how fast warm-up was.
@pytest.mark.parametrize(("inline_max_ms", "inline"), [(1e9, True), (0.0, False)])
def test_batched_predictions_equal_one_request_at_a_time(
    settings: Settings, inline_max_ms: float, inline: bool
) -> None:
    settings = settings.model_copy(update={"inline_inference_max_ms": inline_max_ms})
    upgrade_to_head(settings)
    model = seed_mlp(features=6, classes=4, hidden=16)
    register_version(settings, "mlp", model)
    serving = ServingService(settings, registry_lookup(settings))
    rng = np.random.default_rng(3)
    requests = [rng.normal(size=(1 + i % 5, 6)).astype(np.float32) for i in range(40)]

    threads: set[str] = set()

    async def scenario() -> tuple[list[np.ndarray], list[np.ndarray], bool]:
        loaded = await serving.model("mlp")
        run = loaded.batcher._run

        def recorded(inputs: list[np.ndarray]) -> list[np.ndarray]:
            threads.add(threading.current_thread().name)
            return run(inputs)

        loaded.batcher._run = recorded  # the real runtime, noting which thread runs it
        calls_before = inference_calls()
        together = await asyncio.gather(*(serving.predict(loaded, [x]) for x in requests))
        assert inference_calls() - calls_before < len(requests) / 4  # they were batched
        alone = [(await serving.predict(loaded, [x]))[0] for x in requests]
        return [t[0] for t in together], alone, loaded.batcher.inline

    together, alone, ran_inline = asyncio.run(scenario())

    assert ran_inline is inline and (threads == {"MainThread"}) is inline
    for x, batched, single in zip(requests, together, alone, strict=True):
        assert batched.shape == (len(x), 4)
        np.testing.assert_allclose(batched, single, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(batched, np.asarray(model(x)), rtol=1e-5, atol=1e-6)

"""A bounded LRU of loaded models, keyed by (name, version); loading happens once per key."""

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

Key = tuple[str, int]
M = TypeVar("M")


class ModelCache(Generic[M]):
    """Thread-safe LRU. Concurrent requests for one missing key wait for a single load."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._models: OrderedDict[Key, M] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[Key, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Key, load: Callable[[], M]) -> M:
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                self.hits += 1
                return self._models[key]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._models:  # loaded by the request we waited for
                    self.hits += 1
                    return self._models[key]
            model = load()
            with self._lock:
                self.misses += 1
                self._models[key] = model
                self._models.move_to_end(key)
                while len(self._models) > self.capacity:
                    self._models.popitem(last=False)
                self._loading.pop(key, None)
            return model

    def __len__(self) -> int:
        return len(self._models)

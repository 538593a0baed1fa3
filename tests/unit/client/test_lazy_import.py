"""`trainyard serve` and `worker` register the client commands but must not pay for the SDK's
imports (httpx, httpx-sse, tenacity, rich's progress, numpy through the SDK) at start."""

import subprocess
import sys


def test_the_trainyard_command_loads_the_sdk_only_when_a_client_command_runs() -> None:
    probe = "import sys, app.cli; print(sorted(m for m in sys.modules if m.startswith('app.client')))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['app.client', 'app.client.cli']"

"""What the light pool processes (upload parsing, predict decoding) import when they start, so
the first upload after `serve` starts does not wait for pyarrow and numpy to load there."""


def light() -> None:
    import app.datasets.parsing
    import app.serving.tfserving
    import app.serving.v2  # noqa: F401

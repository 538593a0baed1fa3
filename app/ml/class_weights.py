"""`fit.class_weight` as per-row sample weights, for the feeds that gather batches themselves.

Keras weighs classes in two ways: on arrays it looks each row's class up with a default of 1.0;
on a tf.data pipeline it gathers from a table as long as the largest class given, which fails on
a row of a larger class ("indices[3] = 3 is not in [0, 3)"), and it takes no class_weight at all
with batches from Python (JAX feeds). Our feeds compute each row's weight once, the arrays' way,
and hand it to fit() as the batch's sample weights.
"""

import numpy as np


def row_weights(y: np.ndarray, class_weight: dict[int, float]) -> np.ndarray:
    """Each row's weight: its class's weight, 1.0 for a class not given. The class of a row is the
    argmax of a one-hot or probability row, else its rounded label (as Keras takes it)."""
    labels = np.asarray(y)
    if labels.ndim > 1:
        labels = np.argmax(labels, axis=-1) if labels.shape[-1] != 1 else np.squeeze(labels, axis=-1)
    classes = np.round(labels).astype(np.int64)
    table = np.ones(max(int(classes.max(initial=0)), max(class_weight)) + 1, dtype=np.float32)
    for label, weight in class_weight.items():
        table[label] = weight
    return table[classes]

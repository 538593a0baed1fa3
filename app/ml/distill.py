"""Knowledge distillation on any backend: the student trains against a frozen teacher's soft
targets, written on keras.ops so TensorFlow, JAX and PyTorch run the same step.

Why not `keras.distillation.Distiller` (Keras 3.15): its LogitsDistillation softmaxes whatever
the models output, but a trainyard model ends in `softmax` (probabilities, what predict serves),
and it drops sample weights (`fit.class_weight`). Here both outputs are turned into log
probabilities first (log of probabilities, or log_softmax of logits), then softened at T:
softmax(log p / T) is exactly softmax(logits / T).
"""

from typing import Any

import keras
from keras import ops

# Probabilities are clipped before the log: a saturated softmax gives exact zeros.
EPSILON = 1e-7


class DistillationModel(keras.Model):
    """Calls the student; its loss mixes the compiled (hard-label) loss with the teacher's.

    loss = alpha * hard + (1 - alpha) * T^2 * KL(softmax(t / T) || softmax(s / T))

    The teacher is frozen and run in inference mode. Its weights are tracked (so JAX's stateless
    step sees them and checkpoints restore a whole model), never trained. Only `student` is saved
    as the job's model.
    """

    def __init__(
        self,
        student: keras.Model,
        teacher: keras.Model,
        temperature: float,
        alpha: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(name="distillation", **kwargs)
        teacher.trainable = False
        self.student = student
        self.teacher = teacher
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self._student_logits = not _outputs_probabilities(student)
        self._teacher_logits = not _outputs_probabilities(teacher)
        self.built = True  # both models are built: checkpoints load into it before any step

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self.student(inputs, training=training)

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        hard = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        if self.alpha >= 1.0:
            return hard
        teacher_out = ops.stop_gradient(ops.cast(self.teacher(x, training=False), "float32"))
        t = self.temperature
        teacher_log = _log_probabilities(teacher_out, self._teacher_logits) / t
        student_log = _log_probabilities(ops.cast(y_pred, "float32"), self._student_logits) / t
        teacher_soft = ops.softmax(teacher_log, axis=-1)
        kl = ops.sum(
            teacher_soft * (ops.log_softmax(teacher_log, axis=-1) - ops.log_softmax(student_log, axis=-1)), axis=-1
        )
        if sample_weight is not None:
            weights = ops.cast(ops.reshape(sample_weight, ops.shape(kl)), "float32")
            soft = ops.sum(kl * weights) / ops.maximum(ops.sum(weights), EPSILON)
        else:
            soft = ops.mean(kl)
        return self.alpha * hard + (1.0 - self.alpha) * (t * t) * soft


def _log_probabilities(outputs: Any, logits: bool) -> Any:
    if logits:
        return ops.log_softmax(outputs, axis=-1)
    return ops.log(ops.clip(outputs, EPSILON, 1.0))


def _outputs_probabilities(model: keras.Model) -> bool:
    """Whether the model's output is a softmax (probabilities) rather than logits."""
    layer = model.layers[-1] if model.layers else None
    if isinstance(layer, keras.layers.Softmax):
        return True
    activation = getattr(layer, "activation", None)
    return activation is not None and getattr(activation, "__name__", "") == "softmax"


def load_teacher(path: str) -> keras.Model:
    """The registered teacher, loaded with safe_mode (no code in the file runs) and uncompiled."""
    model: keras.Model = keras.saving.load_model(path, safe_mode=True, compile=False)
    return model

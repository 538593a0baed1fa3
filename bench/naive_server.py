"""The naive baseline for bench/predict.py: FastAPI calling `model.predict`, as a first attempt
at serving a Keras model looks (the model path comes from MODEL_PATH)."""

import os
from typing import Any

import keras
import numpy as np
from fastapi import FastAPI

app = FastAPI()
model = keras.saving.load_model(os.environ["MODEL_PATH"], compile=False)


@app.post("/predict")
def predict(body: dict[str, Any]) -> dict[str, Any]:
    x = np.asarray(body["instances"], dtype="float32")
    return {"predictions": model.predict(x, verbose=0).tolist()}

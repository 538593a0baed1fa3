"""Save a .keras model as an MLflow model, for bench/predict.py's MLflow baseline. Runs in a
throwaway venv with MLflow (never a trainyard dependency):

    /tmp/mlflow-venv/bin/python bench/mlflow_model.py model.keras out-dir [--exported]
"""

import argparse

import keras
import mlflow.keras
import numpy as np
from mlflow.models import infer_signature

parser = argparse.ArgumentParser()
parser.add_argument("keras_file")
parser.add_argument("out_dir")
parser.add_argument("--exported", action="store_true", help="save_exported_model=True")
args = parser.parse_args()
model = keras.saving.load_model(args.keras_file, compile=False)
x = np.zeros((1, 100), dtype=np.float32)
mlflow.keras.save_model(
    model,
    args.out_dir,
    signature=infer_signature(x, np.asarray(model(x))),
    save_exported_model=args.exported,
)

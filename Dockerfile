# trainyard: API and worker image. The Keras backend is chosen at build time:
#   docker build .                                  # TensorFlow (CPU)
#   docker build --build-arg EXTRAS=jax-cuda,gpu .  # JAX with CUDA and nvidia-ml-py, for GPU workers
FROM python:3.11-slim

ARG EXTRAS=tensorflow
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    TRAINYARD_HOME=/data \
    TRAINYARD_AUTH=on

RUN useradd --create-home --uid 10001 trainyard \
    && mkdir -p /data && chown trainyard:trainyard /data

WORKDIR /opt/trainyard
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY workers ./workers
COPY migrations ./migrations
RUN pip install ".[${EXTRAS}]"

USER trainyard
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["trainyard"]
# API keys are required (TRAINYARD_AUTH=on). Make the first admin key in the container, on the
# same database:  docker exec <container> trainyard keys create --scope admin
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

# syntax=docker/dockerfile:1
# newsbot: `docker build -t newsbot .`, then see compose.yaml (or README, "Deploying").
# The same installation as `make setup`, minus the dev tools and the editable install:
# torch pinned first (the CPU wheel), then the project with constraints.txt.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- builder: a venv in /opt/venv --------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
# PyPI's Linux torch is the multi-GB CUDA build; the CPU wheels live on PyTorch's own index.
# The Makefile gets the same pinned CPU wheel from the machine's wheel directory instead.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --quiet --upgrade pip
# Only the torch wheel from there: its dependencies (sympy, networkx...) come from PyPI with the
# project's, pinned by constraints.txt like everything else.
RUN pip install --quiet --no-deps --index-url "$TORCH_INDEX_URL" torch==2.13.0
WORKDIR /src
COPY pyproject.toml constraints.txt README.md LICENSE ./
COPY index ./index
COPY bot ./bot
RUN pip install --quiet -c constraints.txt .

# -- runtime: the venv, a non-root user, the data volume ---------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 newsbot \
    && useradd --system --uid 10001 --gid newsbot --home-dir /home/newsbot --create-home \
       --shell /usr/sbin/nologin newsbot \
    && mkdir /data && chown newsbot:newsbot /data
COPY --from=builder /opt/venv /opt/venv
COPY deploy/healthcheck.py /opt/newsbot/healthcheck.py
# METRICS_PORT: /healthz and /metrics (off by default outside the image); METRICS_LISTEN:
# every interface of the container, so a Prometheus on the compose network can scrape it
# (compose publishes nothing). deploy/healthcheck.py asks 127.0.0.1.
ENV PATH=/opt/venv/bin:$PATH \
    NEWSBOT_DATA_DIR=/data \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    ANONYMIZED_TELEMETRY=False \
    TOKENIZERS_PARALLELISM=false \
    PYTHONUNBUFFERED=1 \
    METRICS_PORT=9108 \
    METRICS_LISTEN=0.0.0.0
# An empty working directory: no stray .env is read from it (settings come from the environment).
WORKDIR /app
USER newsbot
VOLUME /data
# 8443: webhook mode (WEBHOOK_PORT), 9108: health/metrics (METRICS_PORT).
EXPOSE 8443 9108
# The health server starts once the services are open: on a first start with an empty store,
# after the built-in sample is indexed (a few minutes on 2 cores), hence the start period.
HEALTHCHECK --interval=30s --timeout=10s --start-period=300s --retries=3 \
    CMD ["python", "/opt/newsbot/healthcheck.py"]
ENTRYPOINT ["newsbot"]
CMD ["serve"]

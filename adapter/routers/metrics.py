"""GET /metrics: the adapter's Prometheus metrics (Triton's own stay on Triton's metrics port).

With several adapter workers (PROMETHEUS_MULTIPROC_DIR set) every worker's samples are merged here."""
import os

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from adapter.paths import METRICS

router = APIRouter()


@router.get(METRICS, include_in_schema=False)
def prometheus_metrics() -> Response:
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

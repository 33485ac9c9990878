"""Prometheus scrape endpoint; unauthenticated like every exporter, so keep it off the internet."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from chelian.api.deps import MetricsDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def scrape(metrics: MetricsDep) -> Response:
    return Response(metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

"""The Prometheus endpoint and the per-request counter."""

from prometheus_client.parser import text_string_to_metric_families


def request_counts(text: str) -> dict[tuple[str, str, str], float]:
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "chelian_http_requests"]
    return {(s.labels["method"], s.labels["route"], s.labels["status"]): s.value
            for s in family.samples if s.name == "chelian_http_requests_total"}


def test_metrics_is_prometheus_text_with_request_counts_by_route_template(client, owner, car):
    client.get(f"/api/v1/vehicles/{car}", headers=owner.headers)
    client.get(f"/api/v1/vehicles/{car}", headers=owner.headers)
    client.get("/api/v1/vehicles/WVWZZZ1JZ3W386752", headers=owner.headers)
    client.get("/api/v1/vehicles")
    client.get("/no/such/page")
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "chelian_http_requests_total" in r.text
    counts = request_counts(r.text)
    assert counts[("GET", "/api/v1/vehicles/{vin}", "200")] == 2
    assert counts[("GET", "/api/v1/vehicles/{vin}", "404")] == 1
    assert counts[("GET", "/api/v1/vehicles", "401")] == 1
    assert counts[("POST", "/api/v1/users", "201")] == 1
    assert counts[("POST", "/api/v1/vehicles", "201")] == 1
    assert counts[("GET", "unmatched", "404")] == 1
    assert not any(car in route for _, route, _ in counts)


def test_metrics_come_from_the_apps_own_registry(client, metrics):
    metrics.signals_stored.inc(7)
    assert "chelian_signals_stored_total 7.0" in client.get("/metrics").text


def test_openapi_docs_are_served(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/api/v1/vehicles/{vin}/signals/{path}/history" in spec["paths"]
    assert spec["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == \
        "/api/v1/auth/token"

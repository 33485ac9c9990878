"""How failures reach clients: reasons for ChelianErrors, nothing internal for the rest."""

from fastapi.testclient import TestClient

from chelian.errors import ConfigError, ConflictError, NotFoundError, ValidationError


def raising(exc: Exception):
    def endpoint():
        raise exc

    return endpoint


def test_chelian_errors_map_to_status_with_reason(app):
    for status, exc in ((400, ValidationError("bad thing")), (404, NotFoundError("no thing")),
                        (409, ConflictError("thing exists"))):
        app.get(f"/raise/{status}")(raising(exc))
    client = TestClient(app)
    assert client.get("/raise/400").json() == {"detail": "bad thing"}
    assert client.get("/raise/404").status_code == 404
    r = client.get("/raise/409")
    assert r.status_code == 409 and r.json() == {"detail": "thing exists"}


def test_unexpected_errors_are_500_without_internals_and_still_counted(app):
    app.get("/config-broken")(raising(ConfigError("database password is hunter2")))
    app.get("/crash")(raising(RuntimeError("boom")))
    client = TestClient(app, raise_server_exceptions=False)
    r = client.get("/config-broken")
    assert r.status_code == 500 and r.json() == {"detail": "internal error"}
    assert client.get("/crash").status_code == 500
    text = client.get("/metrics").text
    assert 'route="/crash",status="500"' in text and 'route="/config-broken",status="500"' in text

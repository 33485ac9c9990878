"""Sign-up, token issue, and what a missing or bad token gets."""

from tests.api.conftest import PASSWORD, make_owner


def test_sign_up_returns_public_user_without_hash(client):
    r = client.post("/api/v1/users", json={"email": "Ana@Example.com", "password": PASSWORD})
    assert r.status_code == 201
    body = r.json()
    assert body["email"] == "ana@example.com" and isinstance(body["id"], int)
    assert body["created_at"].endswith("Z")
    assert not any("password" in key or "hash" in key for key in body)


def test_sign_up_errors_have_reasons(client):
    client.post("/api/v1/users", json={"email": "a@example.com", "password": PASSWORD})
    r = client.post("/api/v1/users", json={"email": "A@example.com", "password": PASSWORD})
    assert r.status_code == 409 and "already exists" in r.json()["detail"]
    r = client.post("/api/v1/users", json={"email": "not-an-email", "password": PASSWORD})
    assert r.status_code == 400 and "e-mail" in r.json()["detail"]
    r = client.post("/api/v1/users", json={"email": "b@example.com", "password": "short"})
    assert r.status_code == 400 and "at least 8" in r.json()["detail"]
    r = client.post("/api/v1/users", json={"email": "b@example.com"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "password"]


def test_token_is_a_bearer_token_that_identifies_the_user(client):
    client.post("/api/v1/users", json={"email": "ana@example.com", "password": PASSWORD})
    r = client.post("/api/v1/auth/token", data={"username": "ana@example.com", "password": PASSWORD})
    assert r.status_code == 200
    token = r.json()
    assert token["token_type"] == "bearer" and token["expires_in"] == 3600 and len(token["access_token"]) > 20
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.status_code == 200 and me.json()["email"] == "ana@example.com"


def test_wrong_password_is_401_with_reason(client):
    make_owner(client, "ana@example.com")
    r = client.post("/api/v1/auth/token", data={"username": "ana@example.com", "password": "nope nope"})
    assert r.status_code == 401
    assert r.json() == {"detail": "wrong e-mail or password"}
    assert r.headers["www-authenticate"] == "Bearer"
    r = client.post("/api/v1/auth/token", data={"username": "ghost@example.com", "password": PASSWORD})
    assert r.status_code == 401


def test_token_form_needs_both_fields(client):
    r = client.post("/api/v1/auth/token", data={"username": "ana@example.com"})
    assert r.status_code == 422


def test_missing_or_invalid_token_is_401_with_www_authenticate(client):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic YTpi"}):
        for url in ("/api/v1/users/me", "/api/v1/vehicles", "/api/v1/vehicles/1M8GDM9AXKP042788/state"):
            r = client.get(url, headers=headers)
            assert r.status_code == 401, (url, headers)
            assert r.headers["www-authenticate"] == "Bearer"
            assert r.json()["detail"]

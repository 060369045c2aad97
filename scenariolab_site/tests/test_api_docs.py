"""The API's documentation works offline: its page loads Swagger UI from our static files, not a CDN."""

import re

import pytest


@pytest.mark.django_db
def test_api_docs_are_served_from_local_static_files(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui-bundle.js" in s for s in sources)
    assert all(s.startswith("/") for s in sources if s.endswith((".js", ".css"))), sources
    # No address on a CDN anywhere in the page (the word alone may turn up in a random CSRF token).
    assert not re.search(r"(?:https?:)?//[\w.-]*cdn", html, re.IGNORECASE)
    schema = client.get("/api/openapi.json").json()
    assert "/api/runs/" in schema["paths"] and "/api/scenarios/" in schema["paths"]


@pytest.mark.django_db
def test_unknown_api_paths_answer_in_the_error_shape(client):
    response = client.get("/api/nothing/here")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "no API endpoint at /api/nothing/here", "fields": []}

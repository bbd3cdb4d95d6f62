"""The admin listener is not reachable through the API listener (issue 9, "Identity").

/metrics, /healthz and /readyz exist only on `admin_listen`: asked on `listen` (whatever the
Host header or path tricks) they are 404 in OpenAI's error format with no metrics text, and the
API is not served on the admin port either.
"""

from __future__ import annotations

import httpx2
import pytest

from harness import config as cfg
from harness.clients import CLIENT_OPENAI_KEY, Tailmeter, http_client
from harness.sim import Sim, new_marker

ADMIN_PATHS = ["/metrics", "/healthz", "/readyz", "//metrics", "/metrics?x=1", "/v1/../metrics", "/%6detrics"]


@pytest.mark.parametrize("path", ADMIN_PATHS)
@pytest.mark.parametrize("src", [cfg.SRC_ALICE, cfg.SRC_UNKNOWN])
def test_admin_paths_are_404_on_the_api_listener(tailmeter: Tailmeter, path: str, src: str) -> None:
    with http_client(src) as http:
        for host in (tailmeter.listen, tailmeter.admin):
            resp = http.get(f"{tailmeter.base_url}{path}", headers={"host": host, "authorization": f"Bearer {CLIENT_OPENAI_KEY}"})
            assert resp.status_code in (403, 404), (path, resp.status_code, resp.text[:300])
            assert "tailmeter_" not in resp.text and "# HELP" not in resp.text, resp.text[:300]
            assert isinstance(resp.json().get("error"), dict), resp.text


def test_api_is_not_served_on_the_admin_listener(tailmeter: Tailmeter, sim: Sim) -> None:
    marker = new_marker()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    with httpx2.Client(timeout=10.0, trust_env=False) as http:
        resp = http.post(f"http://{tailmeter.admin}/v1/chat/completions", json=body,
                         headers={"authorization": f"Bearer {CLIENT_OPENAI_KEY}", **marker})
        models = http.get(f"http://{tailmeter.admin}/v1/models")
    assert resp.status_code in (404, 405), resp.text
    assert models.status_code == 404, models.text
    assert sim.find(marker, expect=0) == []

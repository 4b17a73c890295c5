"""The sign-in page for a person with only a browser: it signs them in at the tenant's identity provider (the
authorization code flow with PKCE, through MSAL, for the approvals scope) and shows the token to paste into
the Proof field of the Resume form. It keeps nothing: a sign-in in progress lives in memory for minutes, the
token only in the page it shows. `ppcmk serve` runs it beside the Prefect UI; the redirect address it uses
(`http://localhost:<port>/`) must be registered on the sign-in client (docs/AZURE.md)."""

from __future__ import annotations

import html
import socket
import threading
import time
from typing import Any
from urllib.parse import parse_qsl

import msal
import requests
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ppcmk.identity.signin import SignIn

FLOW_LIFETIME_S = 600  # a sign-in left unfinished this long is forgotten


class ProofPage:
    def __init__(self, signin: SignIn, port: int, ca_bundle: str | None = None,
                 max_age_minutes: int = 10) -> None:
        self.signin, self.port, self.max_age_minutes = signin, port, max_age_minutes
        self.redirect_uri = f"http://localhost:{port}/"
        session = requests.Session()
        # the connection's CA, whatever REQUESTS_CA_BUNDLE says (requests would prefer the environment's)
        session.trust_env, session.verify = False, ca_bundle or True
        origin = signin.authority if signin.authority.startswith("https://") else f"https://{signin.authority}"
        self._msal = msal.PublicClientApplication(
            signin.client_id, authority=f"{origin}/{signin.tenant_id}", http_client=session,
            instance_discovery=signin.instance_discovery)
        self._flows: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/", self.answer, methods=["GET", "POST"])])

    async def answer(self, request: Request) -> Response:
        # the identity provider posts the code back (form_post: it stays out of the address bar and logs)
        query = dict(parse_qsl((await request.body()).decode())) if request.method == "POST" else {}
        if "state" not in query:
            return self._start()
        with self._lock:
            _, flow = self._flows.pop(query["state"], (0.0, {}))
        if not flow:
            return _page("That sign-in is unknown or too old.", '<a href="/">Sign in again</a>')
        result = self._msal.acquire_token_by_auth_code_flow(flow, query)
        if "access_token" not in result:
            return _page("The sign-in did not complete.", html.escape(str(result.get("error_description", ""))
                                                                       or "no reason given"))
        who = result.get("id_token_claims") or {}
        name, upn = who.get("name"), who.get("preferred_username")
        signed_in = f"{name} ({upn})" if name and upn else str(name or upn or "someone")
        return _proof(str(result["access_token"]), signed_in, self.max_age_minutes)

    def _start(self) -> Response:
        flow = self._msal.initiate_auth_code_flow([self.signin.scope], redirect_uri=self.redirect_uri,
                                                  response_mode="form_post")
        now = time.monotonic()
        with self._lock:
            self._flows = {s: f for s, f in self._flows.items() if now - f[0] < FLOW_LIFETIME_S}
            self._flows[str(flow["state"])] = (now, flow)
        return RedirectResponse(str(flow["auth_uri"]), status_code=302)

    def serve_in_background(self) -> uvicorn.Server:
        # listening before the thread starts: a browser sent here at once waits in the backlog, not refused
        listening = socket.create_server(("127.0.0.1", self.port))
        server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))
        threading.Thread(target=server.run, kwargs={"sockets": [listening]}, name="ppcmk-proof-page",
                         daemon=True).start()
        return server


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><html><head><meta charset='utf-8'><title>ppcmk proof</title></head>"
                        f"<body style='font-family:sans-serif;max-width:46em;margin:2em auto'>"
                        f"<h1>{html.escape(title)}</h1>{body}</body></html>",
                        headers={"Cache-Control": "no-store"})


def _proof(token: str, signed_in: str, max_age_minutes: int) -> HTMLResponse:
    return _page("Your proof", (
        f"<p>Signed in as <b id='who'>{html.escape(signed_in)}</b>.</p>"
        "<p>Copy it into the <b>Proof</b> field of the run's Resume form, choose your decision and submit "
        f"within {max_age_minutes} minutes. It answers one question, asked before you signed in, and opens "
        "no service.</p>"
        f"<textarea id='proof' readonly rows='8' style='width:100%'>{html.escape(token)}</textarea>"
        "<p><button onclick=\"navigator.clipboard.writeText(document.getElementById('proof').value)\">"
        "Copy</button></p>"))

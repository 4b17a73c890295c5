"""A person signs in: the device-code flow (a device shows a code, the person enters it at the verification
page and signs in with their password) and the authorization-code flow with PKCE (the browser goes to the
authorize endpoint, the person signs in, the code goes back to the client's redirect URI)."""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

from ppcmk_sandbox.http import Route, SandboxRequest, SandboxResponse
from ppcmk_sandbox.identity import pages
from ppcmk_sandbox.identity.errors import aad_error
from ppcmk_sandbox.identity.grants import authority_of, form_of, public_client, signed_in_person
from ppcmk_sandbox.identity.principals import Principal
from ppcmk_sandbox.identity.signins import Authorization

VERIFICATION_PATH = "/devicelogin"
POLL_INTERVAL_SECONDS = 5  # what Entra asks; MSAL polls at once first, so an approved code costs no wait
LOOPBACK_HOSTS = ("localhost", "127.0.0.1")


def device_authorization(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    """`POST /{tenant}/oauth2/v2.0/devicecode`: a device code for a public client, and the code a person
    types at the verification page."""
    authority = authority_of(req)
    tenant_id = authority.tenant(req.world, match["tenant"])
    form = form_of(req)
    public_client(req, form.get("client_id", ""), tenant_id)
    lifetime = req.world.settings.device_code_seconds
    device_code, flow = authority.sign_ins.start_device_flow(
        form["client_id"], form.get("scope", "").split(), lifetime
    )
    uri = f"{authority.origin}{VERIFICATION_PATH}"
    return SandboxResponse(
        200,
        {
            "user_code": flow.user_code,
            "device_code": device_code,
            "verification_uri": uri,
            "expires_in": int(lifetime),
            "interval": POLL_INTERVAL_SECONDS,
            "message": f"To sign in, use a web browser to open the page {uri} and enter the code "
            f"{flow.user_code} "
            "to authenticate.",
        },
    )


def verification_page(req: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
    return pages.enter_code(VERIFICATION_PATH)


def enter_code(req: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
    code = form_of(req).get("otc", "")
    flow = authority_of(req).sign_ins.device_flow_by_user_code(code)
    if flow is None:
        return pages.enter_code(VERIFICATION_PATH, "That code didn't work. Check the code and try again.")
    return pages.sign_in(
        f"{VERIFICATION_PATH}/signin", _app_name(req, flow.client_id), {"otc": flow.user_code}
    )


def device_sign_in(req: SandboxRequest, _: re.Match[str]) -> SandboxResponse:
    form = form_of(req)
    flow = authority_of(req).sign_ins.device_flow_by_user_code(form.get("otc", ""))
    if flow is None:
        return pages.enter_code(VERIFICATION_PATH, "That code has expired. Start again on your device.")
    person = signed_in_person(req, form.get("login", ""), form.get("passwd", ""))
    if not isinstance(person, Principal):
        return pages.sign_in(
            f"{VERIFICATION_PATH}/signin",
            _app_name(req, flow.client_id),
            {"otc": flow.user_code},
            error=person,
        )
    flow.signed_in = person.object_id
    return pages.signed_in(_app_name(req, flow.client_id))


def authorize(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    """`GET /{tenant}/oauth2/v2.0/authorize`: the sign-in page for a valid request, else the error page."""
    authority = authority_of(req)
    tenant_id = authority.tenant(req.world, match["tenant"])
    query = req.query
    application = req.world.identities.application(query.get("client_id", ""))
    redirect_uri = query.get("redirect_uri", "")
    if application is None:
        return pages.refused(
            f"AADSTS700016: Application with identifier '{query.get('client_id')}' was not "
            f"found in the directory '{tenant_id}'."
        )
    if not _registered(application.redirect_uris, redirect_uri):
        return pages.refused(
            f"AADSTS50011: The redirect URI '{redirect_uri}' specified in the request does not "
            f"match the redirect URIs configured for the application '{application.app_id}'."
        )
    if query.get("response_type") != "code":
        return pages.refused(
            "AADSTS900144: The request body must contain the following parameter: "
            "'response_type' with the value 'code'."
        )
    request_id = authority.sign_ins.start_authorization(
        Authorization(
            application.app_id,
            redirect_uri,
            query.get("scope", "").split(),
            query.get("state"),
            query.get("nonce"),
            query.get("code_challenge"),
            query.get("response_mode", "query"),
        )
    )
    return pages.sign_in(f"/{match['tenant']}/login", application.display_name, {"request": request_id})


def sign_in(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    """`POST /{tenant}/login`: the person's password; then the code goes to the redirect URI."""
    authority = authority_of(req)
    form = form_of(req)
    authorization = authority.sign_ins.authorization(form.get("request", ""))
    if authorization is None or authorization.signed_in is not None:
        raise aad_error("invalid_request", 900561, "The sign-in request is unknown or was already used.")
    person = signed_in_person(req, form.get("login", ""), form.get("passwd", ""))
    if not isinstance(person, Principal):
        return pages.sign_in(
            f"/{match['tenant']}/login",
            _app_name(req, authorization.client_id),
            {"request": form["request"]},
            error=person,
        )
    code = authority.sign_ins.issue_code(form["request"], person.object_id)
    answer = {"code": code, **({"state": authorization.state} if authorization.state else {})}
    if authorization.response_mode == "form_post":
        return pages.form_post(authorization.redirect_uri, answer)
    return SandboxResponse(302, None, {"Location": f"{authorization.redirect_uri}?{urlencode(answer)}"})


def _registered(redirect_uris: list[str], asked: str) -> bool:
    """Exact match, or a loopback redirect URI on any port (Entra ignores the port of http://localhost)."""
    wanted = urlsplit(asked)
    for uri in redirect_uris:
        registered = urlsplit(uri)
        loopback = registered.scheme == wanted.scheme == "http" and registered.hostname in LOOPBACK_HOSTS
        if asked == uri or (
            loopback
            and wanted.hostname == registered.hostname
            and wanted.path.rstrip("/") == registered.path.rstrip("/")
        ):
            return True
    return False


def _app_name(req: SandboxRequest, client_id: str) -> str:
    application = req.world.identities.application(client_id)
    return application.display_name if application else client_id


TENANT = r"/(?P<tenant>[^/_][^/]*)"
ROUTES = [
    Route("POST", rf"{TENANT}/oauth2/v2\.0/devicecode", device_authorization, "token"),
    Route("GET", VERIFICATION_PATH, verification_page, "token"),
    Route("POST", VERIFICATION_PATH, enter_code, "token"),
    Route("POST", rf"{VERIFICATION_PATH}/signin", device_sign_in, "token"),
    Route("GET", rf"{TENANT}/oauth2/v2\.0/authorize", authorize, "token"),
    Route("POST", rf"{TENANT}/login", sign_in, "token"),
]

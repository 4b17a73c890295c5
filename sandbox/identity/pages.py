"""The pages a person sees at the sandbox authority: enter a device code, sign in, the result. Form fields
keep Entra's element ids (`otc` for the code, `i0116` username, `i0118` password, `idSIButton9` the
button), so a browser test reads like one written against the real pages."""

from __future__ import annotations

from html import escape

from ppcmk_sandbox.http import SandboxResponse

_STYLE = (
    "body{font-family:Segoe UI,Helvetica,Arial,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}"
    "input{display:block;width:100%;margin:.5rem 0 1rem;padding:.4rem}"
    "button{padding:.4rem 1.5rem}.error{color:#a80000}"
)


def _html(title: str, body: str, status: int = 200) -> SandboxResponse:
    document = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return SandboxResponse.page(status, document)


def _error(message: str | None) -> str:
    return f"<p class='error' id='error' role='alert'>{escape(message)}</p>" if message else ""


def _hidden(fields: dict[str, str]) -> str:
    return "".join(f"<input type='hidden' name='{escape(k)}' value='{escape(v)}'>" for k, v in fields.items())


def enter_code(action: str, error: str | None = None) -> SandboxResponse:
    return _html(
        "Enter code",
        f"{_error(error)}<form method='post' action='{escape(action)}'>"
        "<label for='otc'>Enter the code displayed on your app or device.</label>"
        "<input id='otc' name='otc' autocomplete='off' required>"
        "<button id='idSIButton9' type='submit'>Next</button></form>",
    )


def sign_in(
    action: str, application: str, hidden: dict[str, str], error: str | None = None
) -> SandboxResponse:
    return _html(
        "Sign in",
        f"<p>to continue to {escape(application)}</p>{_error(error)}"
        f"<form method='post' action='{escape(action)}'>{_hidden(hidden)}"
        "<label for='i0116'>Email, phone, or Skype</label>"
        "<input id='i0116' name='login' type='email' autocomplete='username' required>"
        "<label for='i0118'>Password</label>"
        "<input id='i0118' name='passwd' type='password' autocomplete='current-password' required>"
        "<button id='idSIButton9' type='submit'>Sign in</button></form>",
    )


def signed_in(application: str) -> SandboxResponse:
    return _html(
        "You're signed in",
        f"<p id='message'>You have signed in to the {escape(application)} "
        "application on your device. You may now close this window.</p>",
    )


def refused(message: str) -> SandboxResponse:
    """An authorize request the authority will not send back to its redirect URI (unknown app, wrong URI)."""
    return _html("Sorry, but we're having trouble signing you in.", _error(message), status=400)


def form_post(redirect_uri: str, fields: dict[str, str]) -> SandboxResponse:
    """`response_mode=form_post`: the browser posts the code to the client's redirect URI."""
    return _html(
        "Working...",
        f"<form method='post' name='hiddenform' action='{escape(redirect_uri)}'>"
        f"{_hidden(fields)}<noscript><button type='submit'>Continue</button></noscript></form>"
        "<script>document.forms.hiddenform.submit()</script>",
    )

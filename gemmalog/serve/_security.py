"""The server's walls: the token, the Host rule and the headers every answer carries.

- **Token**: when the server has one (always, off 127.0.0.1), every request shows it: the
  ``Authorization: Bearer`` or ``X-Gemmalog-Token`` header, ``?token=`` (the link the CLI
  prints), or the cookie the first valid visit sets. Otherwise: 401.
- **Host**: without a token the server is local only, and answers only requests addressed
  to a loopback name (``localhost``, ``127.0.0.1``, ``[::1]``), so a web page elsewhere
  cannot reach it by pointing a DNS name at 127.0.0.1.
- **POST** (the SQL box) must be JSON from the server's own origin.
- **Headers**: a Content-Security-Policy with no inline script and nothing from another
  origin, ``nosniff``, no framing, no referrer.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "gemmalog_token"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
LOOPBACK = frozenset({"localhost", "127.0.0.1", "[::1]"})


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """ASGI middleware: refuse what the rules above refuse, add the headers to the rest."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        set_cookie = False
        if self.token is None:
            if _host_name(headers.get("host", "")).lower() not in LOOPBACK:
                await _refuse(
                    send,
                    403,
                    "this server answers only requests to localhost or 127.0.0.1 "
                    "(start it with --token to serve other names)",
                )
                return
        else:
            shown = _shown_token(headers, query)
            if shown is None or not hmac.compare_digest(shown.encode(), self.token.encode()):
                await _refuse(
                    send,
                    401,
                    "a valid token is needed: open the link `gemmalog serve` printed "
                    "(?token=...) or send the header 'Authorization: Bearer <token>'",
                )
                return
            set_cookie = "token" in query
        if scope["method"] == "POST":
            problem = _post_problem(headers)
            if problem:
                await _refuse(send, 403, problem)
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = list(HEADERS)
                if set_cookie and self.token is not None:
                    cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                    extra.append((b"set-cookie", cookie.encode("latin-1")))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _shown_token(headers: dict[str, str], query: dict[str, list[str]]) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if "x-gemmalog-token" in headers:
        return headers["x-gemmalog-token"]
    if query.get("token"):
        return query["token"][0]
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header is no token
        return None
    morsel = cookie.get(COOKIE)
    return morsel.value if morsel is not None else None


def _post_problem(headers: dict[str, str]) -> str | None:
    """Why a POST is refused: a form another site submits is not JSON, and a script of
    another origin says so in its Origin header."""
    if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return "POST requests must send JSON (Content-Type: application/json)"
    origin = headers.get("origin")
    if origin is not None:
        host = headers.get("host", "")
        if origin not in (f"http://{host}", f"https://{host}"):
            return f"POST from another origin ({origin}) refused"
    return None


async def _refuse(send: Send, status: int, message: str) -> None:
    body = orjson.dumps({"error": message, "status": status})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""Who may use the dashboard: a token off localhost, same-origin checks on changes.

- With a token (``--token`` or ``FLOWRRA_DASHBOARD_TOKEN``), every page, API call and
  WebSocket needs it: a bearer header (``Authorization: Bearer <token>``) for programs, or
  the cookie the login form sets for browsers. Tokens are compared in constant time.
- Without a token the dashboard only answers requests addressed to a loopback host name
  (``127.0.0.1``, ``localhost``, ``[::1]``), so a page elsewhere cannot reach it through
  DNS rebinding.
- A request that changes state (``POST``, ``PUT``, ``DELETE``) is refused when the browser
  says it comes from another site (``Origin`` or ``Sec-Fetch-Site``), and its body must be
  JSON or the login form, so a cross-site form cannot forge one.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

__all__ = ["COOKIE", "TOKEN_ENV", "Guard", "is_loopback", "resolve_token"]

#: The environment variable a token is read from when none is passed.
TOKEN_ENV = "FLOWRRA_DASHBOARD_TOKEN"
#: The cookie that carries the token for browsers.
COOKIE = "flowrra_token"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_UNSAFE = {"POST", "PUT", "DELETE", "PATCH"}
_OPEN_PATHS = ("/login", "/static/")


def resolve_token(token: str | None) -> str | None:
    """``token``, else ``FLOWRRA_DASHBOARD_TOKEN``, else None; blank counts as None."""
    value = token if token is not None else os.environ.get(TOKEN_ENV)
    return value.strip() or None if value else None


def is_loopback(host: str) -> bool:
    """True for a loopback address or name (``127.0.0.1``, ``::1``, ``localhost``)."""
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class Guard:
    """ASGI middleware applying the rules of this module in front of ``app``.

    Usage::

        asgi = Guard(starlette_app, token="s3cret")
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        """Guard ``app``; ``token`` None means loopback-only access without a token."""
        self.app = app
        self.token = token

    def token_ok(self, presented: str | None) -> bool:
        """True if ``presented`` is the token (constant-time comparison)."""
        if self.token is None:
            return True
        if not presented:
            return False
        return hmac.compare_digest(presented.encode(), self.token.encode())

    def _presented(self, headers: dict[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:
            return None
        morsel = cookie.get(COOKIE)
        return morsel.value if morsel is not None else None

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        path = scope.get("path", "")
        local = path[len(scope.get("root_path", "")) :] if path else path
        if self.token is None and not is_loopback(_host_name(headers.get("host", ""))):
            return 403, (
                "This dashboard has no token, so it only answers on localhost. Start it "
                "with --token (or FLOWRRA_DASHBOARD_TOKEN) to use it from elsewhere."
            )
        if scope["type"] == "http" and scope.get("method", "GET") in _UNSAFE:
            if not self._same_origin(headers):
                return 403, "Cross-site request refused."
            if local != "/login":
                kind = headers.get("content-type", "").split(";")[0].strip().lower()
                if headers.get("content-length", "0") not in ("", "0") and kind != (
                    "application/json"
                ):
                    return 415, "Send a JSON body (Content-Type: application/json)."
        needs_token = self.token is not None and not local.startswith(_OPEN_PATHS)
        if needs_token and not self.token_ok(self._presented(headers)):
            return 401, "A token is needed: log in at ./login or send Authorization: Bearer."
        return None

    @staticmethod
    def _same_origin(headers: dict[str, str]) -> bool:
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return False
        origin = headers.get("origin")
        if origin is None or origin == "null":
            return origin is None
        return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse or pass on one request or WebSocket."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refusal = self._refusal(scope, headers)
        if scope["type"] == "websocket" and refusal is None and not self._same_origin(headers):
            refusal = 403, "Cross-site WebSocket refused."
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401 if status == 401 else 4403})
            return
        path = scope.get("path", "")
        wants_html = "text/html" in headers.get("accept", "") and "/api/" not in path
        if status == 401 and wants_html and scope.get("method") == "GET":
            login = f"{scope.get('root_path', '')}/login"
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [(b"location", login.encode()), (b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        import json

        body = json.dumps({"detail": message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

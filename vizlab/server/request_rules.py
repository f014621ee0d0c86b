"""The rules every request to vizlab's Visdom server must meet, as pure functions of its
headers and body (vizlab.server.request_checks applies them to each of Visdom's handlers).

Modelled on jupyter_server's checks. A web page the user opens anywhere can make the browser send
requests to 127.0.0.1:8097: cross-site POSTs (a ``text/plain`` form, ``fetch`` with ``mode:
"no-cors"``) need no permission, and a DNS-rebinding page talks to the server under its own
host name. Visdom checks neither. So:

- every request (page, API, static file, websocket): the Host header names a loopback address,
  the address the server listens on, a name given with ``--allow-host``, or any IP address when
  it listens on every interface (DNS rebinding needs a host name);
- every writing request (any method but GET/HEAD/OPTIONS): no Origin, or the server's own
  (``Sec-Fetch-Site``, where the browser sends it, is same-origin), and something a cross-site
  page cannot send without a CORS preflight, which this server never grants:
  ``Content-Type: application/json`` (vizlab's client, Visdom's page's fetches) or an
  ``X-Requested-With`` header (jQuery adds it to the page's same-origin posts, whose JSON it
  labels as a form); Visdom 0.3's env upload, a multipart form, needs the same Origin instead;
- with ``--login``: a valid login cookie (vizlab.server.login) on every writing request but the
  login itself, and on every websocket;
- bodies: at most ``MAX_BODY_BYTES`` (a login ``LOGIN_BODY_BYTES``), a JSON object whose env
  names are valid (vizlab.server.env_names); websocket messages: the same JSON and env-name
  checks.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass

from vizlab.server import env_names
from vizlab.server import login as logins

# The largest window vizlab sends is a comparison's train-loss plot: one trace of up to 2,000
# points per variant, 56 KB each; 32 variants (compare's default cap) make 1.8 MB, and 16 MiB
# holds about 290 (--max-variants).
MAX_BODY_BYTES = 16 * 2**20
LOGIN_BODY_BYTES = 4096
MAX_WIN_ID = 256
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")  # the rest write
_HOST_RE = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._-]+))(?::\d{1,5})?$")


@dataclass(frozen=True)
class Policy:
    """Which Host names the server answers to, and its login (None: no login)."""

    hosts: frozenset[str] = frozenset({"localhost"})
    any_ip: bool = False  # listening on every interface: any IP address is a fine Host
    login: logins.Login | None = None

    @classmethod
    def build(cls, listen_host: str, allow_hosts=(), credentials=None) -> Policy:
        """The policy for a server listening on ``listen_host``; ``allow_hosts``: the names
        given with --allow-host; ``credentials``: (user, password) for --login."""
        any_ip = listen_host in ("", "0.0.0.0", "::")
        names = {"localhost", *(normalize_host(h) for h in allow_hosts)}
        if not any_ip:
            names.add(normalize_host(listen_host))
        login = logins.Login(*credentials) if credentials else None
        return cls(frozenset(names), any_ip, login)


def normalize_host(name: str) -> str:
    """A host name or address as compared: lower case, no brackets or final dot, IPs canonical."""
    name = name.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name


def is_host_name(name: str) -> bool:
    """Whether ``name`` can be a Host header's name: an IP address or letters, digits, .-_"""
    try:
        ipaddress.ip_address(name.strip("[]"))
        return True
    except ValueError:
        return bool(re.fullmatch(r"[A-Za-z0-9._-]+", name)) and name.strip(".") != ""


def host_allowed(policy: Policy, host_header: str) -> bool:
    match = _HOST_RE.match(host_header or "")
    if not match:
        return False
    name = normalize_host(match["v6"] or match["name"])
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name in policy.hosts
    return address.is_loopback or policy.any_ip or name in policy.hosts


def same_origin(origin: str, host_header: str) -> bool:
    """Whether an Origin header names the server as the browser reached it (scheme aside)."""
    netloc = origin.split("://", 1)[1] if "://" in origin else ""
    return bool(netloc) and netloc.rstrip("/").lower() == (host_header or "").lower()


def cross_site_problem(headers, host_header: str, form_upload: bool = False) -> str | None:
    """Why a writing request may come from another site's page; None when it cannot."""
    origin = headers.get("Origin")
    if origin is not None and not same_origin(origin, host_header):
        return f"cross-origin request from {origin[:100]} refused"
    if headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return "cross-site request refused"
    ctype = headers.get("Content-Type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or headers.get("X-Requested-With"):
        return None
    if form_upload and origin is not None and ctype == "multipart/form-data":
        return None
    return "a writing request needs Content-Type: application/json or X-Requested-With"


def payload_problem(handler_name: str, payload: object, path_args=()) -> str | None:
    """Why a request's JSON cannot be right for this Visdom handler; None when it may be.
    Only what breaks the server (env names, ids used as keys); Visdom checks the rest."""
    if not isinstance(payload, dict):
        return "the request body must be a JSON object"
    for key in ("eid", "prev_eid"):
        if payload.get(key) is not None:
            problem = env_names.problem(payload[key])
            if problem:
                return problem
    for key, limit in (("win", MAX_WIN_ID), ("sid", MAX_WIN_ID)):
        value = payload.get(key)
        if value is not None and not (isinstance(value, str) and len(value) <= limit):
            return f"{key} must be a string of at most {limit} characters"
    if handler_name == "SaveHandler":
        names = payload.get("data")
        if not isinstance(names, list):
            return "save: data must be a list of env names"
        return next(filter(None, map(env_names.problem, names)), None)
    if handler_name == "DataHandler" and "data" in payload and not isinstance(payload["data"], str):
        return "win_data: data must be a string of JSON"
    if handler_name.endswith("SocketWrap") and payload.get("message") is not None:
        return message_problem(payload["message"])  # the page's polling mode: socket messages
    if handler_name in ("EnvHandler", "CompareHandler") and path_args:
        # The page asks for envs by name here; names older envs may have (made before these
        # checks) must still open: only refuse what leaves the env dir.
        names = path_args[0].split("+") if handler_name == "CompareHandler" else path_args[:1]
        if any(env_names.env_file(".", n) is None for n in names if n):
            return "env name leaves the env dir"
    return None


def message_problem(message: object) -> str | None:
    """Why a websocket message must be dropped; None when Visdom may have it."""
    if not isinstance(message, (str, bytes)):
        return "not text"
    try:
        msg = json.loads(message)
    except (ValueError, RecursionError):
        return "not JSON"
    if not isinstance(msg, dict):
        return "not a JSON object"
    data = msg.get("data")
    for holder in (msg, data if isinstance(data, dict) else {}):
        for key in ("eid", "prev_eid"):
            if holder.get(key) is not None and env_names.problem(holder[key]):
                return env_names.problem(holder[key])
    return None

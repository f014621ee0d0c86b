"""The server's login (``vizlab server start --login``), in place of Visdom's.

Visdom's login cookie holds the user name and a hash of the password (stealing the cookie
gives a password hash to crack), lacks HttpOnly and SameSite, and failed attempts cost nothing.
Here:

- the cookie is tornado's signed cookie (HMAC with the server's cookie secret, kept in the state
  dir), holding the user name only, HttpOnly, SameSite=Strict, valid ``COOKIE_DAYS`` days;
  it keeps Visdom's name (``user_password``) because Visdom's own Python client sends that one
  cookie on its websocket; deleting the state dir's cookie_secret logs every browser out;
- attempts are checked one at a time, and a failed one is answered only after a delay that
  doubles with each failure in a row (``FIRST_DELAY`` up to ``MAX_DELAY`` seconds); the others
  wait their turn, so guessing gets one try per delay however many connections an attacker
  opens; beyond ``MAX_WAITING`` waiting attempts the answer is 429 at once;
- the browser and the clients send the password's SHA-256, as with Visdom (its login page
  hashes it in JavaScript); it is compared in constant time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac

COOKIE = "user_password"
COOKIE_DAYS = 7
FIRST_DELAY = 1.0
MAX_DELAY = 16.0
MAX_WAITING = 8
MAX_FIELD = 1024  # characters of a user name or password digest


class TooManyAttempts(Exception):
    """More attempts wait than MAX_WAITING."""


class Login:
    """The one user a server accepts, and the state of failed attempts."""

    def __init__(self, user: str, password: str):
        self.user = user
        self._digest = hashlib.sha256(password.encode()).hexdigest()
        self._failures = 0
        self._waiting = 0
        self._turn = asyncio.Lock()

    @property
    def failures(self) -> int:
        """Failed attempts in a row."""
        return self._failures

    def delay(self) -> float:
        """Seconds the next failed attempt is held."""
        return min(MAX_DELAY, FIRST_DELAY * 2 ** self._failures)

    async def attempt(self, user: str, digest: str) -> bool:
        """Whether (user, password SHA-256 hex) is right; a wrong one returns after a delay.
        Raises TooManyAttempts when MAX_WAITING attempts already wait."""
        if self._waiting >= MAX_WAITING:
            raise TooManyAttempts
        self._waiting += 1
        try:
            async with self._turn:
                ok = (hmac.compare_digest(user.encode(), self.user.encode())
                      & hmac.compare_digest(digest.lower().encode(), self._digest.encode()))
                if ok:
                    self._failures = 0
                    return True
                delay = self.delay()
                self._failures += 1
                await asyncio.sleep(delay)  # holding the turn: the next attempt waits too
                return False
        finally:
            self._waiting -= 1


def current_user(handler, login: Login | None) -> str | None:
    """The logged-in user of a request (a RequestHandler or WebSocketHandler), or None."""
    if login is None:
        return None
    value = handler.get_signed_cookie(COOKIE, max_age_days=COOKIE_DAYS)
    if value is None or not hmac.compare_digest(value, login.user.encode()):
        return None
    return login.user


def set_cookie(handler, login: Login) -> None:
    handler.set_signed_cookie(COOKIE, login.user, expires_days=None, httponly=True,
                              samesite="Strict", secure=handler.request.protocol == "https")


def credentials_problem(payload: object) -> str | None:
    """Why a login request's JSON is not {"username": str, "password": str}; None when it is."""
    if not isinstance(payload, dict):
        return "a login is a JSON object with username and password"
    for key in ("username", "password"):
        value = payload.get(key)
        if not isinstance(value, str) or not 0 < len(value) <= MAX_FIELD:
            return f"login: {key} must be a string of 1 to {MAX_FIELD} characters"
    return None

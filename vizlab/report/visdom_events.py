"""Browser -> Python events from a Visdom server, on a thread of their own.

Visdom forwards what a user does in the page (a property edited, a button pressed, a key, a
click) to every Python client connected to its ``/vis_socket`` websocket, the way the visdom
client's own socket thread receives them. ``EventListener`` holds that websocket open and hands
each event (a dict with an ``event_type``) to a callback; it reconnects with backoff when the
server goes away, never raises into its caller and never prints more than one warning.

The callback runs on the listener's thread: it must be quick and thread-safe (the Visdom sink's
only puts a command into the run's inbox).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from vizlab.report import visdom_client as vc

BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0
RECV_TIMEOUT = 1.0  # seconds: how often the thread looks whether it should stop


class EventListener:
    def __init__(self, target: vc.VisdomTarget, on_event: Callable[[dict], None],
                 name: str = "vizlab-visdom-events"):
        self.target, self.on_event = target, on_event
        self.connected = threading.Event()  # set while the websocket is open (tests wait on it)
        self._stop = threading.Event()
        self._ws = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> EventListener:
        self._thread.start()
        return self

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        ws = self._ws
        if ws is not None:
            try:
                ws.close(timeout=0.2)
            except Exception:
                pass
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def url(self) -> str:
        t = self.target
        return f"{'wss' if t.scheme == 'https' else 'ws'}://{t.host}:{t.port}{t.base_url}/vis_socket"

    def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._stop.is_set():
            try:
                self._listen()
                backoff = BACKOFF_FIRST
            except Exception:  # refused, reset, a server restart: try again later
                pass
            finally:
                self.connected.clear()
                self._ws = None
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _listen(self) -> None:
        import websocket  # websocket-client: visdom's own dependency

        headers = []
        user, password = vc.credentials()
        if user:  # a server with login lets only logged-in sockets in
            client = vc.VisdomClient(self.target)
            try:
                client.login(user, password)
            finally:
                client.close()
            if client.cookie:
                headers.append(f"Cookie: {client.cookie}")
        ws = websocket.create_connection(self.url, timeout=vc.CONNECT_TIMEOUT, header=headers,
                                         enable_multithread=True)
        self._ws = ws
        if self._stop.is_set():
            return ws.close()
        ws.settimeout(RECV_TIMEOUT)
        self.connected.set()
        while not self._stop.is_set():
            try:
                text = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            if not text:  # the server closed the socket
                return
            try:
                message = json.loads(text)
            except ValueError:
                continue
            if isinstance(message, dict) and "event_type" in message:
                try:
                    self.on_event(message)
                except Exception:
                    pass  # the callback's bug must not end the listening

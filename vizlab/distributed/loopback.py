"""`--nproc N` on one machine: every socket of the job listens on loopback only.

torchrun's own one-machine mode (``--standalone``) listens on every interface: its rendezvous
store, the store it shares with the ranks, and (where the host name resolves to a LAN address)
gloo's and NCCL's sockets. Anyone on the network could then join or disturb the job. Here:

- the launcher hosts the rendezvous store itself, on a socket bound to 127.0.0.1, and points
  torchrun at it; torch's c10d rendezvous backend, asking for a multi-tenant store on the same
  port in the same process, reuses that server instead of opening its own;
- torchrun's shared store is turned off (``TORCH_DISABLE_SHARE_RDZV_TCP_STORE``), so rank 0
  hosts the ranks' store, and ``group_store`` binds it to loopback (MASTER_ADDR is 127.0.0.1
  through ``--local-addr``);
- gloo and NCCL are told to use the loopback interface, unless the user said otherwise.

Torch is imported inside functions: the CLI imports the launcher at start-up.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from datetime import timedelta

LOOPBACK = "127.0.0.1"


def one_machine_env(environ=os.environ) -> dict[str, str]:
    """Environment for the launcher and its ranks: no shared store, collectives on loopback."""
    env = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    lo = _loopback_interface()
    for var in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME"):
        if lo and var not in environ:
            env[var] = lo
    return env


def rendezvous_store(timeout: float = 60.0):
    """(store, port): a multi-tenant TCPStore server on 127.0.0.1, for torchrun's rendezvous.

    Keep the store referenced until the job ends: torch reuses its server by port."""
    import torch.distributed as dist

    sock = _listening_socket(LOOPBACK, 0)
    port = sock.getsockname()[1]
    store = dist.TCPStore(LOOPBACK, port, None, True, timedelta(seconds=timeout),
                          wait_for_workers=False, multi_tenant=True,
                          master_listen_fd=sock.detach())
    return store, port


def group_store(environ, rank: int, world_size: int, timeout: timedelta):
    """The ranks' store on a loopback MASTER_ADDR: rank 0 hosts it bound to that address (torch
    would bind every interface). None elsewhere (torch's env:// rendezvous does the work)."""
    addr = environ.get("MASTER_ADDR", "")
    if environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True" or not _is_loopback(addr):
        return None
    import torch.distributed as dist

    port = int(environ["MASTER_PORT"])
    if rank != 0:
        return dist.TCPStore(addr, port, world_size, False, timeout)
    sock = _listening_socket(addr, port)
    return dist.TCPStore(addr, port, world_size, True, timeout, multi_tenant=True,
                         master_listen_fd=sock.detach())


def _listening_socket(addr: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((addr, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.strip("[]")).is_loopback
    except ValueError:
        return addr == "localhost"


def _loopback_interface() -> str | None:
    try:
        names = [name for _, name in socket.if_nameindex()]
    except (OSError, AttributeError):  # no if_nameindex on this platform
        return None
    return next((n for n in ("lo", "lo0") if n in names), None)

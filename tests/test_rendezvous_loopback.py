"""`vizlab run --nproc N` on one machine listens on loopback only (torchrun's --standalone
listens on every interface): read from the kernel's socket tables while the ranks train."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from idxdata import write_idx_dataset

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(),
                                reason="needs Linux's /proc socket tables")


def _listeners() -> dict[str, str]:
    """Listening TCP sockets of the machine: inode -> local address."""
    found = {}
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            raw = bytes.fromhex(fields[1].split(":")[0])
            # /proc prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found[fields[9]] = socket.inet_ntop(family, raw)
    return found


def _process_tree(root: int) -> set[int]:
    pids, grew = {root}, True
    while grew:
        grew = False
        for d in Path("/proc").iterdir():
            if not d.name.isdigit() or int(d.name) in pids:
                continue
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid in pids:
                pids.add(int(d.name))
                grew = True
    return pids


def _socket_inodes(pids: set[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue  # a process that just ended
    return inodes


def test_nproc_listens_on_loopback_only(tmp_path):
    data = write_idx_dataset(tmp_path / "data", n_train=325, n_test=101)
    runs = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIZLAB_", "TORCHELASTIC"))}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vizlab", "run", "mlp", "--data-dir", str(data), "--runs-dir",
         str(runs), "--name", "lo", "--no-visdom", "--progress", "off", "--epochs", "500",
         "--batch-size", "16", "--nproc", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    log = runs / "lo" / "events.jsonl"
    addresses: list[str] = []
    try:
        deadline = time.monotonic() + 120
        # Once an epoch has ended, every store and collective socket of the job is open.
        while time.monotonic() < deadline and not (log.exists() and "epoch_end" in log.read_text()):
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.1)
        inodes = _socket_inodes(_process_tree(proc.pid))
        addresses = [addr for inode, addr in _listeners().items() if inode in inodes]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    # the rendezvous store, the ranks' store and the collectives' sockets
    assert len(addresses) >= 3, addresses
    assert all(a == "127.0.0.1" or a == "::1" for a in addresses), addresses

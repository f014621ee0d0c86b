"""What streaming to Visdom costs a training run (issue 5's speed goals), measured in one run.

    .venv/bin/python scripts/bench_report.py              # 20 epochs of mlp, three ways
    .venv/bin/python scripts/bench_report.py --epochs 3   # quicker

1. `mlp` trained three ways, interleaved: --no-visdom; streaming to vizlab's own Visdom server on
   localhost (the one `vizlab run` starts, started here on a free port); and with that URL's
   server down for the whole run. Goals: each at most 5% slower than --no-visdom (aim 2%), on
   the engine's own training time; and (issue 17) the dashboard's CPU time, the sink's thread
   plus the server process, at most 2% of all the CPU time the streamed run takes (training
   process + server), median over the runs.
2. After the streamed run: every trace of every window at most 2,000 points.
3. The sink's own costs: handle() per event on the training thread, the background thread's
   time per flush, and Visdom's cost to replace or append to a curve window of N points.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env_dir: Path):
    """vizlab's own server (request checks included) on loopback, as `vizlab run` starts it."""
    port = free_port()
    log = open(env_dir / "server.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "vizlab.server.main", "--port", str(port),
                             "--env-dir", str(env_dir), "--state-dir", str(env_dir)],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the Visdom server did not start")


def server_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu() -> float:
    """User + system CPU seconds of this process so far, every thread included."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def train_once(mode: str, url: str, args, runs_dir: Path, sinks: list):
    """One `mlp` run; (engine training seconds, total seconds, run name)."""
    from vizlab.config import build_config
    from vizlab.run.training import train

    name = f"bench-{mode}-{len(list(runs_dir.iterdir()))}"
    options = dict(epochs=args.epochs, progress="off", runs_dir=str(runs_dir), name=name,
                   visdom=mode != "off", visdom_url=url, visdom_url_given=True)
    if args.data_dir:
        options["data_dir"] = args.data_dir
    if args.limit_train:
        options["limit_train"] = args.limit_train
    cfg = build_config("mlp", **options)
    start = time.perf_counter()
    ended, _ = train(cfg)
    total = time.perf_counter() - start
    assert ended.status == "finished", ended
    return ended.wall_time, total, name


def capture_sinks():
    """Keep each VisdomSink the runner makes, to read its counters afterwards."""
    import vizlab.run.training as runner

    made, original = [], runner.make_visdom_sink

    def make(*a, **k):
        sink = original(*a, **k)
        made.append(sink)
        return sink

    runner.make_visdom_sink = make
    return made


def handle_cost(url: str) -> float:
    """Seconds per handle() call of a 64-step chunk, the training thread's whole cost."""
    from vizlab.events import TrainSteps
    from vizlab.report.visdom_sink import VisdomSink

    sink = VisdomSink(url, "bench-handle", max_queue=10**7)
    event = TrainSteps(epoch=1, step=1, losses=(0.5,) * 64, lrs=(0.01,) * 64)
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        for _ in range(1000):
            sink.handle(event)
        times.append((time.perf_counter() - t0) / 1000)
        time.sleep(0.01)
    sink.close()
    return statistics.median(times)


def window_costs(url: str) -> list[tuple[int, float, float]]:
    """(points per trace, replace seconds, append-50-points seconds) for a 2-trace line window."""
    from vizlab.report import visdom_client as vc
    from vizlab.report.window_packets import plot_packet, trace

    viz = vc.connect(url, "bench-costs")
    rows = []
    for n in (200, 2000, 20000):
        xs = list(range(1, n + 1))
        packet = plot_packet("t", "step", "loss", [trace(xs, [1 / x for x in xs], "raw", "#000"),
                                                   trace(xs, [2 / x for x in xs], "s", "#111")])
        more = {"data": [{"x": [float(n + i) for i in range(1, 51)], "y": [0.5] * 50}] * 2,
                "append": True}
        replace, append = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            vc.draw(viz, "bench-costs", "w", packet)
            replace.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            vc.send(viz, {**more, "win": "w", "eid": "bench-costs"}, "update")
            append.append(time.perf_counter() - t0)
        rows.append((n, statistics.median(replace), statistics.median(append)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=1, help="runs per mode (medians are reported)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--limit-train", type=int, default=None)
    ap.add_argument("--no-warmup", dest="warmup", action="store_false",
                    help="skip the untimed one-epoch run done first")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))

    work = Path(tempfile.mkdtemp(prefix="vizlab-bench-"))
    (work / "envs").mkdir()
    (work / "runs").mkdir()
    proc, url = start_server(work / "envs")
    down_url = f"http://127.0.0.1:{free_port()}"
    sinks = capture_sinks()
    results: dict[str, list[tuple[float, float, float]]] = {"off": [], "on": [], "down": []}
    shares: list[float] = []  # per streamed run: dashboard CPU / all CPU of the run
    own_cpu: dict[str, list[float]] = {"off": [], "on": [], "down": []}  # the process's CPU s
    streamed = None
    try:
        if args.warmup:  # the first run pays for imports, page faults, the data unpacking
            warm = argparse.Namespace(**{**vars(args), "epochs": 1, "limit_train": 5000})
            train_once("off", down_url, warm, work / "runs", sinks)
        for r in range(args.repeats):
            order = ["off", "on", "down"]
            order = order[r % 3:] + order[:r % 3]  # rotate: no mode always runs first
            for mode in order:
                cpu0, mine0 = server_cpu(proc.pid), process_cpu()
                engine_s, total_s, name = train_once(mode, url if mode == "on" else down_url,
                                                     args, work / "runs", sinks)
                server_s, mine_s = server_cpu(proc.pid) - cpu0, process_cpu() - mine0
                results[mode].append((engine_s, total_s, server_s))
                own_cpu[mode].append(mine_s)
                if mode == "on":
                    sink_s = sinks[-1].stats["cpu_s"]
                    shares.append((sink_s + server_s) / (mine_s + server_s))
                streamed = name if mode == "on" else streamed
                print(f"  {mode:4s} training {engine_s:6.2f} s   total {total_s:6.2f} s",
                      file=sys.stderr)
        base = statistics.median(r[0] for r in results["off"])
        base_total = statistics.median(r[1] for r in results["off"])
        print(f"\nmlp, {args.epochs} epochs, {args.repeats} run(s) per mode, "
              f"{os.environ['OMP_NUM_THREADS']} torch thread(s)")
        best = min(r[0] for r in results["off"])
        print("training: the engine's own time; total: train() with setup and close. On a shared "
              "machine the best of N\nis the least disturbed measure (noise only adds time).")
        print(f"{'mode':22s} {'training s':>10s} {'ratio':>6s} {'best s':>7s} {'ratio':>6s} "
              f"{'total s':>8s} {'ratio':>6s}")
        labels = {"off": "--no-visdom", "on": "Visdom on localhost", "down": "Visdom server down"}
        for mode, runs in results.items():
            e = statistics.median(r[0] for r in runs)
            b = min(r[0] for r in runs)
            t = statistics.median(r[1] for r in runs)
            goal = "" if mode == "off" else ("  ok (<= 1.05)" if min(e / base, b / best) <= 1.05
                                             else "  OVER 1.05")
            print(f"{labels[mode]:22s} {e:10.2f} {e / base:6.3f} {b:7.2f} {b / best:6.3f} "
                  f"{t:8.2f} {t / base_total:6.3f}{goal}")

        from vizlab.report import visdom_client as vc

        viz = vc.connect(url, streamed)
        windows = vc.window_data(viz, streamed)
        longest = max((len(t.get("x") or []), win) for win, w in windows.items()
                      if isinstance(w["content"], dict) for t in w["content"].get("data", []))
        print(f"\nlongest trace after {args.epochs} epochs: {longest[0]} points ({longest[1]}) "
              f"{'ok (<= 2000)' if longest[0] <= 2000 else 'OVER 2000'}")
        on = [s for s in sinks if s.env.startswith("bench-on")]
        flushes = sum(s.stats["flushes"] for s in on)
        busy = sum(s.stats["flush_s"] for s in on)
        connect = statistics.median(s.stats["connect_s"] for s in on)
        cpu = sum(s.stats["cpu_s"] for s in on)
        server = sum(r[2] for r in results["on"])
        wall = sum(r[1] for r in results["on"])
        print(f"sink thread: {flushes} flushes, {1e3 * busy / max(flushes, 1):.1f} ms each "
              f"(waiting on the server included), {sum(s.stats['requests'] for s in on)} "
              f"requests; first connect and draw {connect:.2f} s")
        print(f"CPU the dashboard costs while streaming: sink thread {cpu:.2f} s + server "
              f"{server:.2f} s in {wall:.1f} s of runs = {100 * (cpu + server) / wall:.1f}% of "
              f"one core ({os.cpu_count()} cores here)")
        share = statistics.median(shares)
        print(f"the dashboard's share of the streamed runs' CPU time (training process + "
              f"server): median {100 * share:.2f}% over {len(shares)} run(s) (each: "
              f"{', '.join(f'{100 * x:.2f}%' for x in shares)}) "
              f"{'ok (<= 2%)' if share <= 0.02 else 'OVER 2%'}")
        on_cpu, off_cpu = statistics.median(own_cpu["on"]), statistics.median(own_cpu["off"])
        served = statistics.median(r[2] for r in results["on"])
        print(f"cross-check, everything streaming adds (the training process's CPU on vs off, "
              f"plus the server): {on_cpu:.2f} s vs {off_cpu:.2f} s + {served:.2f} s = "
              f"{100 * (on_cpu - off_cpu + served) / (on_cpu + served):.2f}% (medians; noisier: "
              "it includes the run-to-run spread of training itself)")
        print(f"handle(): {1e6 * handle_cost(url):.2f} us per event (server up), "
              f"{1e6 * handle_cost(down_url):.2f} us (server down)")
        print("\nVisdom's cost per request, 2-trace line window:")
        print(f"{'points/trace':>12s} {'replace ms':>11s} {'append 50 ms':>13s}")
        for n, replace, append in window_costs(url):
            print(f"{n:12d} {1e3 * replace:11.1f} {1e3 * append:13.1f}")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

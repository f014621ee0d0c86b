"""`vizlab compare ... --nproc N` and `torchrun ... -m vizlab compare ...`: the comparison's runs
(repeats included) dealt over the processes by cost (vizlab.compare.dealing), each process
training its share in lockstep on its own device, on data it loads once.

Every rank writes its own runs' dirs under the comparison dir (rank 0 creates and locks that dir
first and sends its name). The runs' events reach rank 0 through the process group's store
(vizlab.compare.relay), never through a collective, so a fast rank never waits for a slow one;
rank 0 alone draws the dashboard and the terminal table, and writes comparison.json/csv from
what arrived, so the runs that finished are there even when another rank failed. Fairness does
not depend on the number of processes: a run's data order and initial weights come from its own
seed, and every rank splits the data with the first run's seed, as one process does.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import click


def compare_in_processes(ctx, group, nproc: int | None, sequential: bool, target: float | None,
                         make_variants: Callable[[], list]) -> None:
    """The launcher (``group`` None: start ``nproc`` ranks) or one rank (``group``)."""
    from vizlab.distributed.group import worker

    if group is None:
        variants = make_variants()
        precheck(variants, nproc)
        _launch(ctx, nproc)
        return
    name = [f"rank {group.rank}"]
    with worker(group, lambda: name[0]):
        with group.agreement():
            variants = make_variants()
        status = train_share(group, variants, sequential, target, name)
        if status == "interrupted":
            sys.exit(130)


def precheck(variants: list, nproc: int) -> None:
    """Raise, before any process starts, the VizlabError the ranks would raise at the start."""
    from vizlab.compare.dealing import deal_variants
    from vizlab.distributed.group import rank_device
    from vizlab.errors import VizlabError
    from vizlab.run.prepare import prepare_run

    if nproc > len(variants):
        raise VizlabError(f"--nproc {nproc} is more than the {len(variants)} runs to train; "
                          f"use --nproc {len(variants)} or fewer")
    first = variants[0].cfg
    rank_device(first.device, nproc - 1)  # the node's last process needs its own GPU too
    if first.name and (Path(first.runs_dir) / first.name).exists():
        raise VizlabError(f"comparison dir {Path(first.runs_dir) / first.name} exists; pick "
                          "another --name")
    prepare_run(first.replace(device="cpu"), adaptive_threads=False)  # the data, the dashboard URL
    deal_variants(variants, nproc)  # every architecture builds


def _launch(ctx, nproc: int) -> None:
    from vizlab.commands.run import exit_as
    from vizlab.distributed.launcher import launch, worker_argv

    exit_as(launch(worker_argv(ctx), nproc))


def train_share(group, variants: list, sequential: bool, target: float | None,
                name: list[str]) -> str:
    """This rank's part of the comparison; the comparison's status (every rank returns it).
    ``name[0]`` becomes this rank's name in an error line: its rank and its runs."""
    import torch

    from vizlab.commands.compare import comparison_name
    from vizlab.compare.comparison import Comparison
    from vizlab.compare.dealing import deal_variants, share_label
    from vizlab.compare.ranks import local_world_size, rank_threads
    from vizlab.control import Inbox
    from vizlab.run.prepare import prepare_run

    first = variants[0].cfg
    shares = group.from_rank0(lambda: deal_variants(variants, group.world_size))
    mine = shares[group.rank]
    name[0] = f"rank {group.rank} ({share_label(variants, mine)})"
    comparison = Comparison(variants, first.runs_dir, group.from_rank0(
        lambda: comparison_name(variants)), sequential=sequential, env=first.env, target=target,
        inbox=Inbox() if first.control else None)  # commands for this rank's runs
    # The data, split with the first run's seed as one process splits it, on this rank's device.
    data = prepare_run(first.replace(runs_dir=str(comparison.dir), name=variants[0].slug), group,
                       adaptive_threads=False)
    if data.device.type == "cpu":
        torch.set_num_threads(rank_threads(first.threads, local_world_size(group.world_size)))
    with group.agreement():
        comparison.prepare(shared=data, members=mine)
    del data  # its model was built only to check it; the data stays, shared by this rank's runs
    return _Rank(group, comparison, mine, shares).train()


class _Rank:
    """One rank's training and, on rank 0, the comparison's terminal, dashboard and files."""

    def __init__(self, group, comparison, mine: list[int], shares: list[list[int]]):
        from vizlab.compare.ranks import RemoteRuns
        from vizlab.compare.relay import Relay
        from vizlab.control import Inbox
        from vizlab.report.compare_console import CompareConsole
        from vizlab.run.engine import StopFlag

        self.group, self.comparison, self.mine, self.shares = group, comparison, mine, shares
        self.variants = variants = comparison.variants
        self.index = {v.slug: i for i, v in enumerate(variants)}
        self.main = group.is_main
        self.stop = StopFlag()
        # Steering: rank 0's doors (pane, control folder) fill ``doors``; the relay passes each
        # command on to the ranks that train the variant it names.
        self.doors = Inbox() if self.main and comparison.inbox is not None else None
        self.relay = Relay.for_group(group, self.stop, self._delivered if self.main else None,
                                     local=comparison.inbox, doors=self.doors, route=self._route)
        self.remote = self.screen = self.board = None
        if self.main:
            first = variants[0].cfg
            repeats = len({v.cfg.seed for v in variants}) > 1
            self.labels = {v.slug: v.name + (f" (seed {v.cfg.seed})" if repeats else "")
                           for v in variants}
            self.screen = CompareConsole(list(self.labels.values()), first.epochs, first.progress)
            self.remote = RemoteRuns(variants, comparison.dir, mine)

    # -- events ---------------------------------------------------------------------------------
    def _route(self, command) -> list[int]:
        """The ranks that train runs of the variant ``command`` names (rank 0, which answers,
        when none does)."""
        from vizlab.compare.steering import matches

        ranks = [r for r, share in enumerate(self.shares)
                 if any(matches(self.variants[i].name, self.variants[i].slug, command.variant)
                        for i in share)]
        return ranks if command.action == "drop" and ranks else [0]

    def _forward(self, entry, event) -> None:
        """An event of one of this rank's runs (called from its training loop); ``entry`` None:
        this rank's comparison answering a command no run took."""
        if entry is None:
            if self.main:
                self.screen.handle(None, event)
                if self.board is not None:
                    self.board.handle_comparison(event)
        elif self.main:
            self._show(entry.variant, event)
        else:
            self.relay.post(self.index[entry.variant.slug], event)
        self.relay.tick()

    def _delivered(self, index: int, event) -> None:
        """Rank 0: an event of another rank's run."""
        if self.remote.observe(index, event):
            self._show(self.variants[index], event)

    def _show(self, variant, event) -> None:
        self.screen.handle(self.labels[variant.slug], event)
        if self.board is not None:
            self.board.handle_variant(variant.name, variant.cfg.seed, event)

    # -- the comparison -------------------------------------------------------------------------
    def train(self) -> str:
        from vizlab.run.control_files import watching
        from vizlab.run.training import sigint_requests_stop

        self.group.from_rank0(self._open)  # before any rank writes under the comparison dir
        started = time.monotonic()
        status, together = "failed", False
        try:
            with sigint_requests_stop(self.stop), watching(self.comparison.dir, self.doors):
                self._train_here()
                if self.main:
                    self.relay.wait_for_ranks()
                else:
                    status, together = self.relay.wait_end()
        finally:
            if self.main:
                status, together = self._sum_up(time.monotonic() - started,
                                                failing=sys.exc_info()[0] is not None)
            self.comparison.release()
        if together:
            self.group.barrier()  # nobody leaves before every rank has read the end
        if self.main and status == "interrupted":
            click.echo(f"vizlab: interrupted; every variant is checkpointed in "
                       f"{self.comparison.dir} (continue one with `vizlab run --resume DIR`)",
                       err=True)
        return status

    def _open(self) -> None:
        """Rank 0: the dashboard, the comparison dir (locked) and the terminal's first line."""
        from vizlab.commands.compare import _dashboard
        from vizlab.compare.dealing import share_label

        first = self.variants[0].cfg
        self.board = _dashboard(first, self.comparison, self.variants, self.doors) \
            if first.visdom else None
        try:
            self.comparison.open_dir()
        except BaseException:
            if self.board is not None:
                self.board.finish([], "failed")
            raise
        how = "one after another" if self.comparison.sequential else "in lockstep"
        deal = "; ".join(f"rank {r}: {share_label(self.variants, s)}"
                         for r, s in enumerate(self.shares))
        self.screen.console.print(
            f"comparing {len(self.variants)} runs ({how}) in {self.group.world_size} processes "
            f"({deal}) -> {self.comparison.dir}", markup=False)
        self.screen.start()

    def _train_here(self) -> None:
        """Open and train this rank's runs; whatever happens, rank 0 hears how each ended."""
        failure = None
        try:
            self.comparison.open(self._forward, self.stop, create_dir=False)
            self.comparison.run()
        except BaseException as exc:
            failure = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if not self.main:
                _quietly(lambda: self.relay.flush(done=True, failure=failure))

    def _sum_up(self, wall_time: float, failing: bool) -> tuple[str, bool]:
        """Rank 0: take in the last events, write comparison.json/csv, the dashboard's and the
        terminal's rankings, and tell the other ranks the comparison's status; (that status,
        whether every rank meets at a last barrier: none failed)."""
        from vizlab.compare.ranks import termination_deferred

        with termination_deferred():
            if failing:  # let the other ranks stop at a step boundary, with checkpoints
                self.stop.requested = True
            _quietly(lambda: self.relay.tick(now=True))
            self.screen.close()
            self.comparison.adopt(self.remote.all(), wall_time)
            rows = self.comparison.results()
            self.comparison.write_summary(rows)
            if self.board is not None:
                self.board.finish(rows, self.comparison.status)
            together = not failing and not self.relay.failures
            _quietly(lambda: self.relay.announce(self.comparison.status, together))
        if not failing:
            self.screen.ranking(rows, self.comparison.target)
        return self.comparison.status, together


def _quietly(action: Callable[[], None]) -> None:
    """A last word to the store while this rank is already failing: the store may be gone with
    the launcher; the failure that is under way is the one to report."""
    try:
        action()
    except Exception:
        pass

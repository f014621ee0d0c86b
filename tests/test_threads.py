"""The adaptive thread policy, driven step by step with a fake clock and made-up step times
(no timing of this machine: the policy's decisions are what is checked)."""

from __future__ import annotations

from vizlab.run.threads import AdaptiveThreads, thread_counts


class Machine:
    """A fake CPU: the seconds a step takes at each thread count, and a clock."""

    def __init__(self, per_step):
        self.per_step = dict(per_step)
        self.now = 0.0
        self.set_calls = []

    def policy(self, max_threads=2):
        return AdaptiveThreads(max_threads, self.set_calls.append, clock=lambda: self.now,
                               probe_every=10.0)

    def train(self, policy, chunks, steps=64):
        """Train `chunks` chunks of `steps` steps; the thread count used for each."""
        used = []
        for _ in range(chunks):
            seconds = steps * self.per_step[policy.n]
            self.now += seconds
            used.append(policy.n)
            policy.observe(steps, seconds)
        return used


def test_thread_counts_halve_down_to_one():
    assert thread_counts(16) == [16, 8, 4, 2, 1]
    assert thread_counts(2) == [2, 1]
    assert thread_counts(1) == [1]


def test_quiet_machine_keeps_the_faster_count_and_probes_rarely():
    cpu = Machine({2: 0.005, 1: 0.008})  # two threads help on a quiet machine
    policy = cpu.policy()
    used = cpu.train(policy, 400)  # 400 chunks of 0.32 s: about 2 minutes
    assert used[-1] == 2
    assert used.count(1) <= 2 + 400 * 0.32 / 10  # one probe stretch about every 10 s, no more
    assert used.count(1) / len(used) < 0.05


def test_contention_drops_a_thread_and_its_end_brings_it_back():
    cpu = Machine({2: 0.005, 1: 0.008})
    policy = cpu.policy()
    cpu.train(policy, 50)
    assert policy.n == 2
    cpu.per_step = {2: 0.020, 1: 0.0085}  # another process takes a core: the pool collapses
    used = cpu.train(policy, 4)
    assert used[-1] == 1  # within a probe or two of the jump
    busy = cpu.train(policy, 100)
    assert busy[-2:].count(1) >= 1 and busy.count(1) >= 95  # probes of 2 do not stick
    cpu.per_step = {2: 0.005, 1: 0.008}  # the other process ends
    used = cpu.train(policy, 100)
    assert used[-1] == 2 and used[-30:].count(2) >= 29  # back at 2, probing 1 now and then


def test_short_stretches_are_ignored_and_one_core_never_switches():
    cpu = Machine({2: 0.005, 1: 0.008})
    policy = cpu.policy()
    policy.observe(3, 10.0)  # an epoch's 3-step tail, however slow, says nothing
    assert policy.n == 2 and not cpu.set_calls
    single = cpu.policy(max_threads=1)
    cpu.train(single, 20)
    assert single.n == 1 and not cpu.set_calls



def test_jumpy_steps_at_the_best_count_back_off_their_probes():
    """A busy machine: one thread is best but its steps are noisy (every third stretch three
    times as slow). Probes of the collapsing two-thread pool back off: the time they cost stays
    a small share of the run. Stretches are cut at half a second, as the engine cuts them."""
    per_step = {2: 0.040, 1: 0.008}
    now, lost, used = 0.0, 0.0, []
    policy = AdaptiveThreads(2, lambda n: None, clock=lambda: now, probe_every=15.0,
                             first_probe=1.0, min_gap=2.0)
    for i in range(600):  # about 5 minutes
        n = policy.n
        steps = min(64, max(8, int(0.5 / per_step[n])))
        seconds = steps * per_step[n] * (3.0 if i % 3 == 2 else 1.0)
        now += seconds
        lost += seconds - steps * per_step[1] * (3.0 if i % 3 == 2 else 1.0)
        used.append(n)
        policy.observe(steps, seconds)
    assert used.index(1) <= 3  # the first look around: after three half-second stretches
    assert lost / now < 0.03, (lost, now, used[2:].count(2))

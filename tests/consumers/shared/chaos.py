"""The shared-consumer chaos run (Must-show 1 and 2 of issue 16), for SQLite and PostgreSQL.

:func:`run_chaos` appends ``events`` events over ``keys`` keys, declares a shared
consumer with per-key order and a short ``ack_wait``, and starts ``workers``
worker processes (:mod:`tests.consumers.shared.chaos_worker`) spread over the
servers. Until everything is acked it SIGKILLs a random worker every
``kill_every`` seconds and starts it again, and SIGKILLs a server (then starts
it again on the same port, in a thread, while the other servers serve on) as
the acked events pass each of ``server_kills`` fractions of them.
:func:`check_records` then judges the workers' files.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests import forked
from tests.serverproc import ROOT, ServerProcess

__all__ = ["ChaosResult", "check_records", "run_chaos"]

CONSUMER = "chaos"
STREAM = "jobs"


@dataclass
class ChaosResult:
    """What a run did, for the test's assertions and its printed figures."""

    info: dict[str, Any]
    seconds: float
    worker_kills: int = 0
    server_kills: int = 0
    files: list[Path] = field(default_factory=list)
    restart_seconds: list[float] = field(default_factory=list)

    def check(self, events: int, keys: int, where: str) -> dict[str, int]:
        """Print the run's figures and assert it ended clean (see :func:`check_records`)."""
        restarts = ", ".join(f"{t:.1f}" for t in self.restart_seconds)
        print(
            f"\n{events} events, {keys} keys, {where}: done in {self.seconds:.1f} s, "
            f"{self.worker_kills} worker kills, {self.server_kills} server kills "
            f"(restarts took {restarts} s)"
        )
        info = self.info
        settled = (info["ack_floor"], info["pending"], info["claimed"], info["parked"])
        assert settled == (events, 0, 0, 0), info
        assert self.server_kills == 2
        assert self.worker_kills >= 3
        counts = check_records(self.files, events, keys)
        print(counts)
        assert counts["acks_recorded"] <= events
        return counts


def _worker(url: str, name: str, out: Path) -> forked.Forked:
    # Forked from the preloaded interpreter (tests/forked.py): a real process, killed
    # by a real SIGKILL, without the ~0.5 s of imports each of ~30 starts would cost.
    return forked.start(
        "tests.consumers.shared.chaos_worker", [url, CONSUMER, name, str(out)], cwd=ROOT
    )


def _fill(api: httpx.Client, events: int, keys: int) -> None:
    batch = [{"type": "job", "key": f"k{i % keys}", "data": {"i": i}} for i in range(events)]
    for i in range(0, events, 1000):
        r = api.post(f"/api/streams/{STREAM}/events", json=batch[i : i + 1000])
        assert r.status_code == 201, r.text


def _info(servers: list[ServerProcess]) -> dict[str, Any] | None:
    for server in servers:
        try:
            r = httpx.get(f"{server.url}/api/consumers/{CONSUMER}/shared", timeout=5)
        except httpx.HTTPError:
            continue
        if r.status_code == 200:
            info: dict[str, Any] = r.json()
            return info
    return None


def run_chaos(
    servers: list[ServerProcess],
    tmp_path: Path,
    *,
    events: int,
    keys: int,
    workers: int = 8,
    ack_wait: float = 2.0,
    kill_every: float = 0.4,
    server_kills: tuple[float, ...] = (0.3, 0.6),
    deadline: float = 120.0,
    seed: int = 16,
) -> ChaosResult:
    """Run the chaos (see the module docstring); the consumer's info at the end."""
    rand = random.Random(seed)
    with httpx.Client(base_url=servers[0].url, timeout=30) as api:
        _fill(api, events, keys)
        r = api.put(
            f"/api/consumers/{CONSUMER}/shared",
            json={
                "stream": STREAM,
                "ack_wait": ack_wait,
                "max_deliver": 1000,
                "ordered_by_key": True,
            },
        )
        assert r.status_code == 200, r.text
    started = time.monotonic()
    result = ChaosResult(info={}, seconds=0.0)
    procs: list[forked.Forked] = []
    incarnation = [0] * workers

    def launch(slot: int) -> forked.Forked:
        incarnation[slot] += 1
        out = tmp_path / f"w{slot}.{incarnation[slot]}.log"
        result.files.append(out)
        return _worker(servers[slot % len(servers)].url, f"w{slot}.{incarnation[slot]}", out)

    restarts: dict[int, threading.Thread] = {}

    def restart(server: ServerProcess) -> None:
        time.sleep(0.2)
        down = time.monotonic()
        server.restart()
        result.restart_seconds.append(time.monotonic() - down)

    try:
        procs = [launch(i) for i in range(workers)]
        kills = list(server_kills)
        next_kill = time.monotonic() + kill_every
        while time.monotonic() - started < deadline:
            info = _info(servers)
            if info is None:
                time.sleep(0.1)
                continue
            result.info = info
            settled = info["head"] - info["pending"] - info["claimed"]  # acked (or parked)
            if kills and settled >= kills[0] * events:
                kills.pop(0)
                index = result.server_kills % len(servers)
                if index in restarts:
                    restarts.pop(index).join()
                servers[index].kill()
                result.server_kills += 1
                # Restarted beside the run: the other servers keep serving meanwhile.
                restarts[index] = threading.Thread(target=restart, args=(servers[index],))
                restarts[index].start()
                continue
            if info["ack_floor"] >= events and info["claimed"] == 0 and info["pending"] == 0:
                result.seconds = time.monotonic() - started  # restarts may still run
                break
            if time.monotonic() >= next_kill:
                slot = rand.randrange(workers)
                procs[slot].kill()
                procs[slot].wait()
                result.worker_kills += 1
                procs[slot] = launch(slot)
                next_kill = time.monotonic() + kill_every * (0.5 + rand.random())
            time.sleep(0.05)
    finally:
        for thread in restarts.values():
            thread.join()
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
    return result


def check_records(files: list[Path], events: int, keys: int) -> dict[str, int]:
    """Judge the workers' records: every event processed, none acked twice, and per key,
    each event first processed after its predecessor's first processing (ack records
    are not ordered: a worker writes one after the answer, when the next event of the
    key may already be out). Returns counts."""
    processed: dict[int, list[float]] = defaultdict(list)
    acked: dict[int, int] = defaultdict(int)
    key_of: dict[int, str] = {}
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) < 3 or (parts[0] == "P" and len(parts) < 4):
                continue  # a line cut by SIGKILL
            if parts[0] == "P":
                offset = int(parts[1])
                key_of[offset] = parts[2]
                processed[offset].append(float(parts[3]))
            elif parts[0] == "A":
                offset = int(parts[1])
                acked[offset] += 1
    missing = sorted(set(range(events)) - set(processed))
    assert missing == [], f"{len(missing)} events never processed, e.g. {missing[:10]}"
    twice = sorted(o for o, n in acked.items() if n > 1)
    assert twice == [], f"acked twice: {twice[:10]}"
    by_key: dict[str, list[int]] = defaultdict(list)
    for offset in range(events):
        by_key[key_of[offset]].append(offset)
    assert len(by_key) == keys
    for key, offsets in by_key.items():
        firsts = [min(processed[o]) for o in offsets]
        assert firsts == sorted(firsts), f"key {key}: processed out of order"
    return {
        "processed": sum(len(t) for t in processed.values()),
        "redelivered": sum(len(t) for t in processed.values()) - events,
        "acks_recorded": sum(acked.values()),
    }

"""HTTP append throughput of ``eventlog serve`` next to a bare Starlette endpoint.

Both servers run as subprocesses on uvicorn (uvloop + httptools, one worker)
on this machine, measured in the same run with the same load generator:
``wrk`` (one thread, keep-alive connections) when it is installed, else an
aiohttp client (a Python generator shares the two cores and caps lower; the
report names which one ran).

Cases:
- single-event appends (~200 B JSON payload), 64 concurrent keep-alive
  connections; the baseline endpoint only decodes the same JSON body;
- batches of 100 events per request (a JSON array), 16 connections; the
  baseline decodes the same 100-event body. Target: 50,000 events/s.

eventlog runs on a fresh SQLite file with its defaults (synchronous=FULL:
every 201 is fsynced), with the per-request access log off (``--no-access-log``)
and also with it on (the default), written to a file.

Before/after in the same rounds: ``EVENTLOG_BENCH_BEFORE=/tmp/before python -m
bench http`` also runs the ``eventlog serve`` of the checkout at that path (e.g.
``git worktree add /tmp/before <commit>``) and reports it beside this one.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import msgspec
import psutil

from bench.common import eventlog_serve, free_port, payload, scratch_dir, server_process
from bench.http_inproc import cpu_per_request, profile_batches
from bench.report import Figure, Section

ROOT = Path(__file__).resolve().parent.parent
PATH = "/api/streams/bench/events"


def bare_server(port: int, *, tuned: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "bench.http_bare", str(port)]
    return [*cmd, "--tuned"] if tuned else cmd


# -- load generators ------------------------------------------------------------------


def _wrk(url: str, body: bytes, connections: int, seconds: float, scratch: Path) -> float:
    """Requests/s of 201 answers with wrk (1 thread); raises if any answer was not 2xx."""
    script = scratch / "post.lua"
    lua_body = body.decode().replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = "{lua_body}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script), url + PATH],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise RuntimeError(f"{bad.group(1)} non-2xx answers:\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate is None:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    return float(rate.group(1))


async def _aiohttp(url: str, body: bytes, connections: int, seconds: float) -> float:
    import aiohttp

    done = 0
    stop_at = time.perf_counter() + seconds
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                async with session.post(url + PATH, data=body, headers=headers) as r:
                    await r.read()
                    if r.status != 201:
                        raise RuntimeError(f"answer {r.status}")
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return done / (time.perf_counter() - start)


def load(url: str, body: bytes, connections: int, seconds: float, scratch: Path) -> float:
    """Requests/s with the available generator (wrk, else aiohttp)."""
    if shutil.which("wrk"):
        return _wrk(url, body, connections, seconds, scratch)
    return asyncio.run(_aiohttp(url, body, connections, seconds))


# -- the scenario -------------------------------------------------------------------------


ROUNDS = 5
COMMAND = "python -m bench http"
#: Another checkout of eventlog (e.g. ``git worktree add /tmp/before <commit>``) whose
#: ``eventlog serve`` is measured beside this one's in the same rounds: before/after.
BEFORE = os.environ.get("EVENTLOG_BENCH_BEFORE")


def _serve_from(tree: str, db: Path, port: int) -> list[str]:
    """``eventlog serve`` of the checkout at ``tree`` (its own code, this interpreter)."""
    serve = " ".join(shlex.quote(a) for a in eventlog_serve(db, port, access_log=False))
    return ["sh", "-c", f"cd {shlex.quote(tree)} && exec {serve}"]


def _pid_of(port: int) -> psutil.Process:
    """The server subprocess started with ``port`` on its command line."""
    for child in psutil.Process().children():
        if str(port) in child.cmdline():
            return child
    raise RuntimeError(f"no server process for port {port}")


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _writer(url: str) -> tuple[float, float]:
    """eventlog's writer counters: (transactions, events written)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = dict(re.findall(r'eventlog_writer\{counter="(\w+)"\} ([\d.e+]+)', text))
    return float(found.get("transactions", 0)), float(found.get("events_written", 0))


def _measure(quick: bool) -> list[dict[str, float]]:
    """``ROUNDS`` interleaved rounds: all four servers run at once (an idle one costs
    nothing) and each round measures every case back to back, so a burst of load
    from elsewhere on the machine hits both sides of a ratio. Each case also
    records the server process's CPU time per request (user + system, every
    thread), which a loaded machine skews far less than the rates."""
    seconds = 2.0 if quick else 3.0
    rounds = 1 if quick else ROUNDS
    single = msgspec.json.encode({"type": "order.created", "data": payload(0)})
    batch = msgspec.json.encode([{"type": "order.created", "data": payload(i)} for i in range(100)])
    rounds_out: list[dict[str, float]] = []

    with scratch_dir() as d, ExitStack() as stack:
        urls: dict[str, str] = {}
        names = ("bare", "bare_tuned", "el", "el_log", *(("before",) if BEFORE else ()))
        ports = {name: free_port() for name in names}
        commands = {
            "bare": bare_server(ports["bare"]),
            "bare_tuned": bare_server(ports["bare_tuned"], tuned=True),
            "el": eventlog_serve(d / "e.db", ports["el"], access_log=False),
            "el_log": eventlog_serve(d / "l.db", ports["el_log"], access_log=True),
        }
        if BEFORE:
            commands["before"] = _serve_from(BEFORE, d / "b.db", ports["before"])
        for name, command in commands.items():
            urls[name] = stack.enter_context(
                server_process(command, ports[name], d / f"{name}.log")
            )
        procs = {name: _pid_of(port) for name, port in ports.items()}
        for url in urls.values():
            load(url, single, 64, 1.0, d)  # warm-up
        # The before checkout right beside this one, first in every other round: a
        # case right after the batches ran slower (their disk writes, likely).
        pair = [("single", "el", single, 64, 1)]
        if BEFORE:
            pair.append(("before_single", "before", single, 64, 1))
        cases = [
            ("bare_single", "bare", single, 64, 1),
            ("bare_tuned_single", "bare_tuned", single, 64, 1),
            *pair,
            ("single_log", "el_log", single, 64, 1),
            ("bare_batch", "bare", batch, 16, 100),
            ("batch", "el", batch, 16, 100),
        ]
        for _ in range(rounds):
            results = {"load_before": os.getloadavg()[0]}
            if BEFORE:
                cases[2], cases[3] = cases[3], cases[2]
            for case, server, body, connections, events in cases:
                before = _cpu(procs[server])
                writer = _writer(urls[server]) if case == "single" else None
                rate = load(urls[server], body, connections, seconds, d)
                used = _cpu(procs[server]) - before
                results[case] = rate * events
                results[f"cpu_{case}"] = used / (rate * seconds) * 1e6
                if writer is not None:
                    after = _writer(urls[server])
                    transactions, written = after[0] - writer[0], after[1] - writer[1]
                    results["per_commit"] = written / transactions if transactions else 0.0
                    results["commits"] = transactions / seconds
            rounds_out.append(results)
    return rounds_out


_PAIRS = (
    ("single", "bare_single"),
    ("single_log", "bare_single"),
    ("single_tuned", "bare_tuned_single"),
    ("batch", "bare_batch"),
    ("before_single", "bare_single"),
)


def _medians(rounds: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, str]]:
    """Each figure's median, and ``median× (min–max)`` of the per-round ratios of
    eventlog's cases to their baselines."""
    medians = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    spreads = {}
    for ours, theirs in _PAIRS:
        mine = "single" if ours == "single_tuned" else ours
        if mine not in rounds[0]:
            continue
        spreads[ours] = "per-round ratios: " + _spread([r[mine] / r[theirs] for r in rounds])
    if "before_single" in rounds[0]:
        spreads["after_before"] = _spread([r["single"] / r["before_single"] for r in rounds])
    return medians, spreads


def _spread(ratios: list[float]) -> str:
    return f"median {statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"


def _round_lines(rounds: list[dict[str, float]]) -> list[str]:
    """Each round's single-event figures, with the machine's load when it began."""
    return [
        "Single events, each round (load average at its start: eventlog / bare req/s, ratio; "
        "server CPU per request eventlog / bare; events per commit; with "
        "`EVENTLOG_BENCH_BEFORE`, that checkout's rate and CPU and this one's ratio to it): "
        + "; ".join(
            f"{r['load_before']:.1f}: {r['single']:,.0f} / {r['bare_single']:,.0f}, "
            f"{r['single'] / r['bare_single']:.2f}×, {r['cpu_single']:.0f} / "
            f"{r['cpu_bare_single']:.0f} µs, {r['per_commit']:.0f}"
            + (
                f"; before {r['before_single']:,.0f} req/s, {r['cpu_before_single']:.0f} µs, "
                f"this / before {r['single'] / r['before_single']:.2f}×"
                if "before_single" in r
                else ""
            )
            for r in rounds
        )
        + ".",
        "",
    ]


async def run(quick: bool) -> Section:
    rounds = await asyncio.to_thread(_measure, quick)
    results, spreads = _medians(rounds)
    cpu = await asyncio.to_thread(cpu_per_request)
    profile = await asyncio.to_thread(profile_batches) if results["batch"] < 50_000 else []
    generator = (
        "wrk 4.1 (1 thread, keep-alive)" if shutil.which("wrk") else "aiohttp client (Python)"
    )
    loads = [r["load_before"] for r in rounds]
    command = f"EVENTLOG_BENCH_BEFORE=<checkout> {COMMAND}" if BEFORE else COMMAND
    cpu_ratio = results["cpu_bare_single"] / results["cpu_single"]
    figures = [
        Figure(
            "single-event appends, 64 connections",
            results["single"],
            results["bare_single"],
            unit="req/s",
            target=0.7,
            note=f"access log off; {spreads['single']}",
        ),
        Figure(
            "single-event appends, 64 connections, access log on",
            results["single_log"],
            results["bare_single"],
            unit="req/s",
            target=0.7,
            note=f"the default: one log line per request, to a file; {spreads['single_log']}",
        ),
        Figure(
            "single-event appends, 64 connections, vs the bare endpoint given "
            "`eventlog serve`'s GC and GIL settings",
            results["single"],
            results["bare_tuned_single"],
            unit="req/s",
            note=(
                "access log off; shows what eventlog's work costs apart from those "
                f"settings; {spreads['single_tuned']}"
            ),
        ),
        Figure(
            "batches of 100 events, 16 connections",
            results["batch"],
            results["bare_batch"],
            unit="events/s",
            note=f"target: 50,000 events/s absolute; {spreads['batch']}",
        ),
    ]
    if "before_single" in results:
        figures.append(
            Figure(
                "single-event appends, 64 connections: the checkout named by "
                "`EVENTLOG_BENCH_BEFORE`",
                results["before_single"],
                results["bare_single"],
                unit="req/s",
                note=(
                    f"access log off; {spreads['before_single']}; server CPU per request "
                    f"{results['cpu_before_single']:.0f} µs (this checkout: "
                    f"{results['cpu_single']:.0f} µs); this checkout / it, per round: "
                    f"{spreads['after_before']}"
                ),
            )
        )
    return Section(
        key="http",
        title="HTTP appends (eventlog serve vs a bare Starlette endpoint)",
        conditions=(
            f"`{command}`. "
            f"Load generator: {generator}, on the same machine as the server. "
            "Both servers on uvicorn with uvloop + httptools, one worker, each in its own "
            "process. The baseline endpoint only decodes the same JSON body with msgspec and "
            "answers 201. eventlog appends durably (SQLite, synchronous=FULL, group commit) and "
            "answers 201 with the offsets. Medians of "
            f"{len(rounds)} interleaved rounds of {2 if quick else 3} s per case (the machine is "
            "shared: interleaving puts a load burst on both sides); load average "
            f"{min(loads):.1f}–{max(loads):.1f} at the rounds' starts."
        ),
        figures=figures,
        extra=[
            "Server CPU per single-event request, over the same runs (process CPU time, "
            f"every thread, medians): eventlog {results['cpu_single']:.0f} µs (access log on: "
            f"{results['cpu_single_log']:.0f} µs), bare endpoint "
            f"{results['cpu_bare_single']:.0f} µs: by CPU alone eventlog would run at "
            f"{cpu_ratio:.2f}× the bare endpoint. Each 201 waits for its commit: "
            f"{results['commits']:,.0f} commits/s of {results['per_commit']:.0f} events "
            "(medians), so the time a commit takes (the flush, the writer thread's turns at "
            "the GIL, the loop's turns between commits) bounds the rate, and it grows with "
            "the machine's load where the bare endpoint's CPU-bound rate does not.",
            "",
            *_round_lines(rounds),
            "In-process CPU per request (no sockets, 64 concurrent, measured in this run): "
            f"bare endpoint {cpu['bare']:.0f} µs, eventlog's HTTP layer over a no-op log "
            f"{cpu['app']:.0f} µs, eventlog on SQLite {cpu['full']:.0f} µs (the writer "
            "thread included).",
            "",
            f"Batches: {results['batch']:,.0f} events/s against the 50,000 events/s target "
            f"({'met' if results['batch'] >= 50_000 else '**not met**'}).",
            "",
            *profile,
        ],
    )


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(run("--quick" in sys.argv)).print()

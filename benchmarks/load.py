"""HTTP load generators for the benchmarks, each in processes of their own so they do not share
an interpreter with the server they measure.

`wrk` (Debian: `apt-get install -y wrk`) is used when it is on PATH; otherwise a small asyncio
generator over raw keep-alive connections, in several processes. Both report requests/s, latency
percentiles, errors and how much CPU the generator itself used (to show it is not the bottleneck).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int  # connection errors, timeouts and non-2xx answers
    generator_cpu: float  # generator CPU seconds per wall second (1.0 = one core busy)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def run_load(
    url: str, tokens: list[str], clients: int, seconds: float, generator: str = "auto"
) -> LoadResult:
    """`clients` concurrent keep-alive connections for `seconds`, each request carrying the next
    of `tokens` as its bearer token."""
    if generator == "wrk" or (generator == "auto" and shutil.which("wrk")):
        return _wrk(url, tokens, clients, seconds)
    return _python(url, tokens, clients, seconds)


# ---------------------------------------------------------------- wrk

_WRK_SCRIPT = """
local tokens = {}
local counter = 0
function setup(thread)
  thread:set("offset", counter * 7919)
  counter = counter + 1
end
function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  i = offset
end
function request()
  i = i % #tokens + 1
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. tokens[i]})
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "us": %d, "errors": %d, "p50": %d, "p95": %d, "p99": %d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def _wrk(url: str, tokens: list[str], clients: int, seconds: float) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="fxcrm-wrk-") as work:
        script, token_file = Path(work) / "bearer.lua", Path(work) / "tokens"
        script.write_text(_WRK_SCRIPT)
        token_file.write_text("\n".join(tokens) + "\n")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        out = subprocess.run(
            [
                shutil.which("wrk") or "wrk",
                "-t2",
                f"-c{clients}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                url,
                "--",
                str(token_file),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    data = json.loads(line.removeprefix("RESULT "))
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return LoadResult(
        requests=data["requests"],
        seconds=data["us"] / 1e6,
        p50_ms=data["p50"] / 1000,
        p95_ms=data["p95"] / 1000,
        p99_ms=data["p99"] / 1000,
        errors=data["errors"],
        generator_cpu=cpu / wall,
    )


# ---------------------------------------------------------------- Python fallback


def _python(url: str, tokens: list[str], clients: int, seconds: float) -> LoadResult:
    processes = min(clients, max(2, (os.cpu_count() or 2)))
    shares = [
        clients // processes + (1 if i < clients % processes else 0) for i in range(processes)
    ]
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        started = time.perf_counter()
        parts = pool.starmap(
            _generator_process,
            [
                (url, tokens[i::processes] or tokens, share, seconds)
                for i, share in enumerate(shares)
            ],
        )
        wall = time.perf_counter() - started
    latencies = sorted(latency for part in parts for latency in part[0])
    if not latencies:
        raise RuntimeError(f"no request to {url} succeeded")

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    return LoadResult(
        requests=len(latencies),
        seconds=max(part[2] for part in parts),
        p50_ms=pct(50),
        p95_ms=pct(95),
        p99_ms=pct(99),
        errors=sum(part[1] for part in parts),
        generator_cpu=sum(part[3] for part in parts) / wall,
    )


def _generator_process(
    url: str, tokens: list[str], clients: int, seconds: float
) -> tuple[list[float], int, float, float]:
    start_cpu = time.process_time()
    latencies, errors, elapsed = asyncio.run(_drive(url, tokens, clients, seconds))
    return latencies, errors, elapsed, time.process_time() - start_cpu


async def _drive(
    url: str, tokens: list[str], clients: int, seconds: float
) -> tuple[list[float], int, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def client(offset: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        i = offset
        while time.perf_counter() < deadline:
            i = (i + 1) % len(tokens)
            request = (
                f"GET {target} HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {tokens[i]}\r\n\r\n"
            ).encode()
            sent = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            if head[9:10] == b"2":
                latencies.append(time.perf_counter() - sent)
            else:
                errors += 1
        writer.close()

    await asyncio.gather(*(client(n * 7919) for n in range(clients)))
    return latencies, errors, time.perf_counter() - started

"""The proxy probed as an attacker and an operator would (issue #20), each figure printed
against its goal: load with a seeded schedule of five fault kinds, the upstream killed and
restarted, a fuzz of each listener, the request-framing cases, discovery pointing elsewhere
(SSRF), every artifact searched for secrets, seeded schedules expanded twice, and memory per
token and at steady state. Exit status 1 when a goal is missed.

Usage: python bench/soak.py [--clients N] [--seconds S] [--fuzz N] [--seeds N]
                            [--memory-minutes M]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.fuzz import _fuzz
from examples.stacks import free_port
from jitchaos import Schedule, read_audit
from jitchaos.proxy import ProxyClient
from tests.common.cli import serving_idp, serving_proxy
from tests.common.service import healthy_app, served
from tests.proxy.test_framing import CASES
from tests.proxy.test_fuzz import WELL_FORMED, listening

ROOT = Path(__file__).resolve().parent.parent
BASIC = "Basic " + base64.b64encode(b"svc:svc-secret").decode()
FAULT_KINDS = "revoke,expire,narrow,latency,rotate_keys"
IDP = ("--client", "svc:svc-secret:read,write")
Row = tuple[str, str, str, bool]


def load(args: argparse.Namespace, folder: Path) -> tuple[list[Row], list[str], list[Path]]:
    """Clients granting tokens and calling the service through the proxy under a seeded
    schedule of faults; then the audit file against the proxy's memory."""
    log = folder / "audit.jsonl"
    tokens: list[str] = []
    counts = {"requests": 0, "5xx": 0, "other": 0}
    with (
        served(healthy_app()) as service,
        serving_proxy(
            "--upstream",
            "embedded",
            "--client",
            "svc:svc-secret:read,write",
            "--service",
            f"api={service}",
            "--seed",
            "7",
            "--rate",
            "0.02",
            "--faults",
            FAULT_KINDS,
            "--audit",
            str(log),
        ) as (process, said),
    ):
        idp = said["idp"].split()[0]
        front = said["service api"].split(" -> ")[0]

        async def client(session: aiohttp.ClientSession, until: float) -> None:
            while time.monotonic() < until:
                async with session.post(
                    idp + "/token",
                    data={"grant_type": "client_credentials", "scope": "read"},
                    headers={"Authorization": BASIC},
                ) as answer:
                    body = await answer.json(content_type=None)
                    _count(counts, answer.status)
                token = body.get("access_token") if isinstance(body, dict) else None
                if not token:
                    continue
                if len(tokens) < 200:
                    tokens.append(token)
                for _ in range(3):
                    async with session.get(
                        front + "/read", headers={"Authorization": f"Bearer {token}"}
                    ) as answer:
                        await answer.read()
                        _count(counts, answer.status)

        async def run() -> None:
            until = time.monotonic() + args.seconds
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:
                await asyncio.gather(*(client(session, until) for _ in range(args.clients)))

        asyncio.run(run())
        control = ProxyClient(said["control"], said["secret"])
        in_memory = control.audit()
        history = control.history()
        secret = said["secret"]
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    (folder / "proxy.out").write_text(out + err)
    (folder / "history.json").write_text(json.dumps(history))
    report = read_audit(log)
    events_memory = len(in_memory["events"])
    decisions_memory = sum(1 for e in history if e["type"] == "decision")
    rows = [
        ("requests under faults", f"{counts['requests']}", "-", True),
        ("proxy 5xx", f"{counts['5xx']}", "0", counts["5xx"] == 0),
        (
            "ledger events lost (memory / file)",
            f"{events_memory} / {len(report.events)}",
            "equal",
            events_memory == len(report.events),
        ),
        (
            "decisions lost (memory / file)",
            f"{decisions_memory} / {len(report.decisions)}",
            "equal",
            decisions_memory == len(report.decisions),
        ),
        ("faults applied (in the file)", f"{len(report.faults)}", "> 0", bool(report.faults)),
    ]
    return (
        rows,
        [*tokens, secret, "svc-secret"],
        [log, folder / "proxy.out", folder / "history.json"],
    )


def _count(counts: dict[str, int], status: int) -> None:
    counts["requests"] += 1
    if status >= 500:
        counts["5xx"] += 1


def kill_and_restart() -> list[Row]:
    """The upstream IdP killed (SIGKILL) under the proxy, then started again on its port:
    the proxy answers a clear 5xx meanwhile and serves again as soon as it is back."""
    port = free_port()
    with (
        serving_idp(*IDP, "--port", str(port)) as (first, _),
        serving_proxy("--upstream", f"http://127.0.0.1:{port}") as (proxy, said),
    ):
        url = said["idp"].split()[0] + "/token"
        form = {"grant_type": "client_credentials", "scope": "read"}

        def status() -> int:
            import requests

            try:
                return requests.post(
                    url, data=form, headers={"Authorization": BASIC}, timeout=15
                ).status_code
            except requests.RequestException:
                return 0

        before = status()
        first.kill()
        first.wait(timeout=10)
        down = status()
        with serving_idp(*IDP, "--port", str(port)):
            back = time.monotonic()
            while status() != 200 and time.monotonic() - back < 30:
                time.sleep(0.01)
            recovery = time.monotonic() - back
        proxy.send_signal(signal.SIGTERM)
    return [
        ("answer while the upstream is down", f"{down}", "502 or 504", down in (502, 504)),
        (
            "seconds to serve after it returns",
            f"{recovery:.2f}",
            "<= 1",
            before == 200 and recovery <= 1,
        ),
    ]


def fuzz(args: argparse.Namespace) -> list[Row]:
    rows = []
    with listening() as listeners:
        for listener in WELL_FORMED:
            counts, misses, _ = _fuzz(listener, listeners, args.fuzz, 0)
            total = sum(counts.values())
            rows.append(
                (
                    f"fuzz {listener}: 5xx + unanswered",
                    f"{counts['5xx'] + counts['no answer']} of {total}",
                    "0",
                    not misses,
                )
            )
    return rows


def framing() -> list[Row]:
    """Each smuggling shape on both listeners that read raw bytes: refused 400 and closed."""
    wrong = 0
    with listening() as listeners:
        for listener in ("IdP side", "service side"):
            port = listeners[listener]
            for raw in CASES.values():
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    sock.sendall(raw.replace(b"{host}", b"127.0.0.1:%d" % port))
                    answer = b"".join(iter(lambda: sock.recv(65536), b""))
                wrong += not answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")
    cases = 2 * len(CASES)
    return [("framing cases answered otherwise than 400", f"{wrong} of {cases}", "0", wrong == 0)]


def ssrf() -> list[Row]:
    """An upstream whose discovery puts its token endpoint on another host (127.0.0.2)."""
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({})

    elsewhere = web.Application()
    elsewhere.router.add_route("*", "/{tail:.*}", record)
    other_port = free_port()

    async def discovery(request: web.Request) -> web.Response:
        base = f"http://{request.host}"
        return web.json_response(
            {
                "issuer": base,
                "token_endpoint": f"http://127.0.0.2:{other_port}/token",
                "jwks_uri": f"{base}/jwks",
            }
        )

    provider = web.Application()
    provider.router.add_get("/.well-known/openid-configuration", discovery)
    with served(provider) as upstream, served(elsewhere, other_port, "127.0.0.2"):
        result = subprocess.run(
            [sys.executable, "-m", "jitchaos", "proxy", "--upstream", upstream],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    refused = result.returncode == 2 and "token_endpoint is on" in result.stderr
    return [
        (
            "discovery naming another host: start refused",
            "yes" if refused else "no",
            "yes",
            refused,
        ),
        ("requests that reached the other host", f"{len(seen)}", "0", not seen),
    ]


def secrets_in(artifacts: list[Path], secrets: list[str]) -> list[Row]:
    """Every artifact the load left (audit log, proxy output, history) searched for each raw
    token a client got, the control secret and the client secret."""
    found = 0
    size = 0
    for path in artifacts:
        text = path.read_text(errors="replace")
        size += len(text)
        found += sum(text.count(secret) for secret in secrets if secret)
    jwts = sum(len(re.findall(r"eyJ[\w-]{8,}\.[\w-]{8,}\.", p.read_text())) for p in artifacts)
    return [
        (
            f"raw secrets in {size / 1024**2:.1f} MiB of artifacts",
            f"{found} (JWT-shaped: {jwts})",
            "0",
            found == 0 and jwts == 0,
        )
    ]


def determinism(seeds: int) -> list[Row]:
    same = sum(
        Schedule.from_seed(seed, rate=0.05, faults=FAULT_KINDS.split(",")).to_json()
        == Schedule.from_seed(seed, rate=0.05, faults=FAULT_KINDS.split(",")).to_json()
        for seed in range(seeds)
    )
    return [("seeded schedules identical twice", f"{same}/{seeds}", "all", same == seeds)]


def memory(minutes: float) -> list[Row]:
    """bench/memory.py with a horizon (steady state) and without (bytes per token)."""

    def run(*extra: str) -> str:
        result = subprocess.run(
            [sys.executable, "bench/memory.py", "--every", "5", *extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        return result.stdout

    steady = run("--minutes", str(minutes))
    growth = re.search(r"at the end [\d.]+ MiB: ([+-][\d.]+)%", steady)
    grown = float(growth.group(1)) if growth else float("inf")
    unbounded = run("--minutes", "1.5", "--no-horizon")
    per = re.search(r"\((\d+) bytes per token since\)", unbounded)
    return [
        (
            f"RSS growth after the first minute, {minutes:g} min with a horizon",
            f"{grown:+.1f}%",
            "<= +10%",
            grown <= 10,
        ),
        ("bytes per token without a horizon", per.group(1) if per else "?", "-", True),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--fuzz", type=int, default=2000, help="requests per listener")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--memory-minutes", type=float, default=10)
    args = parser.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        steps: list[Callable[[], list[Row]]] = [
            lambda: kill_and_restart(),
            lambda: fuzz(args),
            lambda: framing(),
            lambda: ssrf(),
            lambda: determinism(args.seeds),
        ]
        loaded, secrets, artifacts = load(args, folder)
        rows += loaded
        rows += secrets_in(artifacts, secrets)
        for step in steps:
            rows += step()
        if args.memory_minutes:
            rows += memory(args.memory_minutes)
    print("| figure | measured | goal | met |")
    print("|---|---:|---:|---|")
    for figure, measured, goal, met in rows:
        print(f"| {figure} | {measured} | {goal} | {'yes' if met else 'NO'} |")
    return 0 if all(met for *_, met in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

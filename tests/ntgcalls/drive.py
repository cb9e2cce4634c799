"""Drives NTgCalls (pytgcalls' libwebrtc core) into a Telegram-style SFU, the way
pytgcalls' connect_call.py does: create the call, POST its join JSON, connect with the
answer, wait for CONNECTED, stream a raw PCM file, stop.

    python drive.py URL FILE --calls N --seconds S [--measure]

URL is the SFU's join endpoint (`…/join`, `?chat=<id>` is added). Prints one JSON
object: per chat, whether it connected on the first attempt and how long it took.
With --measure (what `wasmcalls bench pacing` runs), the object is instead what the
process spent while every call streamed: CPU, RSS and threads, beside the calls that
connected; the first call joins and streams alone for a second first, so what is paid
once (threads, code paged in) is told from what each added call costs.
"""

import argparse
import asyncio
import importlib.metadata
import json
import os
import resource
import time
import urllib.request

from ntgcalls import (
    AudioDescription,
    ConnectionState,
    MediaDescription,
    MediaSource,
    NTgCalls,
    StreamMode,
)


def status_kib(name: str) -> int:
    """A `Name:  123 kB` field of /proc/self/status (VmRSS, RssAnon…)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


def rss_kib() -> int:
    return status_kib("VmRSS")


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def post(url: str, body: str) -> str:
    req = urllib.request.Request(url, data=body.encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read().decode()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("file")
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--connect-timeout", type=float, default=10.0)
    ap.add_argument("--measure", action="store_true")
    args = ap.parse_args()

    loop = asyncio.get_running_loop()
    rss_before, anon_before = rss_kib(), status_kib("RssAnon")
    client = NTgCalls()
    states: dict[int, asyncio.Future] = {}

    def on_change(chat, info):
        fut = states.get(chat)
        if fut is None:
            return
        if info.state == ConnectionState.CONNECTED:
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result("connected"))
        elif info.state in (ConnectionState.FAILED, ConnectionState.TIMEOUT, ConnectionState.CLOSED):
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(str(info.state)))

    client.on_connection_change(on_change)
    chats = [-(1000 + i) for i in range(args.calls)]
    results = {}
    started = {}
    media = MediaDescription(
        microphone=AudioDescription(MediaSource.FILE, 48000, 2, args.file, False),
        speaker=None,
        camera=None,
        screen=None,
    )

    async def join(group):
        for chat in group:
            states[chat] = loop.create_future()
            payload = await client.create_call(chat)
            answer = await loop.run_in_executor(None, post, f"{args.url}?chat={chat}", payload)
            started[chat] = time.monotonic()
            await client.connect(chat, answer, False)
        for chat in group:
            try:
                outcome = await asyncio.wait_for(states[chat], args.connect_timeout)
            except asyncio.TimeoutError:
                outcome = "no connection in time"
            results[chat] = {"outcome": outcome, "seconds": round(time.monotonic() - started[chat], 3)}
        for chat in group:
            if results[chat]["outcome"] == "connected":
                await client.set_stream_sources(chat, StreamMode.CAPTURE, media)

    rss_first = anon_first = None
    if args.measure and len(chats) > 1:
        await join(chats[:1])
        await asyncio.sleep(1.0)  # the first call streaming, alone
        rss_first, anon_first = rss_kib(), status_kib("RssAnon")
        await join(chats[1:])
    else:
        await join(chats)
    if args.measure:
        await asyncio.sleep(1.0)  # past connection set-up and codec warm-up
        cpu0, wall0, peak, anon_peak = cpu_seconds(), time.monotonic(), 0, 0
        while time.monotonic() - wall0 < args.seconds:
            await asyncio.sleep(0.25)
            rss = rss_kib()
            if rss > peak:
                peak, anon_peak = rss, status_kib("RssAnon")
        measured = {
            "connected": sum(r["outcome"] == "connected" for r in results.values()),
            "cpu_s": cpu_seconds() - cpu0,
            "wall_s": time.monotonic() - wall0,
            "rss_before_kib": rss_before,
            "rss_peak_kib": peak,
            "anon_before_kib": anon_before,
            "rss_first_kib": rss_first,
            "anon_first_kib": anon_first,
            "anon_peak_kib": anon_peak,
            "threads": threads(),
            "version": importlib.metadata.version("ntgcalls"),
        }
    else:
        await asyncio.sleep(args.seconds)
    for chat in chats:
        try:
            await client.stop(chat)
        except Exception as e:  # a call that never connected may refuse to stop
            results[chat]["stop"] = str(e)
    print(json.dumps(measured if args.measure else results))


asyncio.run(main())

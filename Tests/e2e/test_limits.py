"""Resource bounds under hostile load: the connection limit (503 before the
upgrade, recovery afterwards) and the slow consumer (bounded send queue,
close 1008) while well-behaved clients keep being served."""

import asyncio
import os
import re
import socket
import struct
import time

import pytest
from websockets.exceptions import InvalidStatus

from conftest import EXAMPLES, connect, recv, run, upgrade_request

ECHO = EXAMPLES / "echo.lua"


def response_head(sock, timeout=20):
    """Reads until the end of an HTTP head (or EOF); returns the bytes read."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    return data


async def echo_works(url, text="still served"):
    async with connect(url) as ws:
        await ws.send(text)
        return await recv(ws) == text


# --- the connection limit -------------------------------------------------

def test_over_the_limit_gets_503_then_recovers(broker):
    b = broker(ECHO, "--max-connections", "4")
    assert "max connections 4" in b.wait_for_log("listening on")

    async def body():
        held = [await connect(b.url(f"/r{i}")).__aenter__() for i in range(4)]
        try:
            # The limit is reached: the next client is told so before any upgrade.
            with pytest.raises(InvalidStatus) as refused:
                async with connect(b.url("/late")):
                    pass
            assert refused.value.response.status_code == 503
            assert refused.value.response.headers.get("Retry-After") == "1"
            # Clients already in keep being served.
            for i, ws in enumerate(held):
                await ws.send(f"m{i}")
                assert await recv(ws) == f"m{i}"
            # Two leave; their places are free again.
            for ws in held[:2]:
                await ws.close()
            deadline = time.monotonic() + 10
            while True:
                try:
                    assert await echo_works(b.url("/after"))
                    break
                except InvalidStatus as e:
                    assert e.response.status_code == 503
                    assert time.monotonic() < deadline, "places freed by closed clients never came back"
                    await asyncio.sleep(0.1)
        finally:
            for ws in held:
                await ws.close()

    run(body())
    assert b.count("at the connection limit") >= 1


def test_connection_flood_is_refused_and_broker_recovers(broker):
    b = broker(ECHO, "--max-connections", "20")

    async def body():
        async with connect(b.url("/steady")) as steady:
            # 300 sockets at once, 19 of which fit: the rest must be answered
            # 503 (or, past the refusals in flight, closed), none left hanging.
            flood = []
            for _ in range(300):
                s = socket.create_connection(("127.0.0.1", b.port), timeout=20)
                s.sendall(upgrade_request("GET /flood HTTP/1.1"))
                flood.append(s)
            heads = [response_head(s) for s in flood[19:]]
            statuses = [h.split(b"\r\n", 1)[0] for h in heads]
            assert all(st in (b"HTTP/1.1 503 Service Unavailable", b"") for st in statuses), \
                set(statuses)
            assert statuses.count(b"HTTP/1.1 503 Service Unavailable") >= 200, len(statuses)
            upgraded = [response_head(s) for s in flood[:19]]
            assert all(h.startswith(b"HTTP/1.1 101") for h in upgraded), upgraded[:3]
            # The client that was in before the flood never noticed it.
            await steady.send("during the flood")
            assert await recv(steady) == "during the flood"
            for s in flood:
                s.close()
            # Once the flood is gone, new clients get in again.
            deadline = time.monotonic() + 15
            while True:
                try:
                    assert await echo_works(b.url("/after"))
                    break
                except InvalidStatus:
                    assert time.monotonic() < deadline, "the broker did not recover after the flood"
                    await asyncio.sleep(0.2)

    run(body())




# --- the slow consumer ----------------------------------------------------

FANOUT = """
local blob = string.rep("x", 65536 - 16)

function on_message(message, context, is_binary)
  -- Each tick goes to the whole room as a 64 KiB message that starts with its number.
  strands.send_room_message(context.room_id, string.format("%015d ", tonumber(message)) .. blob)
end

function on_error(message, context)
  strands.log.warn("on_error " .. context.client_id .. ": " .. message)
end

function on_disconnect(context)
  strands.log.info("disconnected " .. context.client_id)
end
"""


def test_slow_consumer_is_closed_1008_while_others_keep_their_latency(broker):
    b = broker(FANOUT, "--max-send-queue", "1M")
    # The slow consumer: a tiny receive window, and it reads nothing for now.
    slow_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow_sock.settimeout(20)
    slow_sock.connect(("127.0.0.1", b.port))
    slow_sock.sendall(upgrade_request("GET /room HTTP/1.1"))
    head = b""
    while b"\r\n\r\n" not in head:
        head += slow_sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    ticks = 200  # 12.5 MiB into the slow client's direction: far past queue and kernel buffers
    latencies = []

    async def body():
        async with connect(b.url("/room"), max_size=None) as fast:
            for i in range(ticks):
                t0 = time.monotonic()
                await fast.send(str(i))
                msg = await recv(fast)
                latencies.append(time.monotonic() - t0)
                assert msg.startswith(f"{i:015d} ") and len(msg) == 65536, (i, msg[:20])

    run(body())
    line = b.wait_for_log(r"is not reading: \d+ bytes queued; closing it with 1008")
    queued = int(re.search(r"(\d+) bytes queued", line).group(1))
    # Bounded: the limit plus at most the frame that crossed it.
    assert queued <= (1 << 20) + 65536, queued
    b.wait_for_log(r"on_error [0-9a-f-]{36}: send queue overflow")
    # Every tick reached the fast client in order, and none took long,
    # although one room member stopped reading a megabyte into the run.
    latencies.sort()
    assert latencies[len(latencies) // 2] < 0.25, latencies[len(latencies) // 2]
    assert latencies[-1] < 2.0, latencies[-1]

    # The slow client reads again: it gets what it was sent before the bound,
    # in order and whole, then close 1008 instead of the dropped backlog.
    from conftest import RawWS
    raw = RawWS(slow_sock)
    numbers = []
    while True:
        fin, op, payload = raw.read_frame()
        if op == 8:
            code = struct.unpack("!H", payload[:2])[0]
            break
        assert fin and op == 1 and len(payload) == 65536
        numbers.append(int(payload[:15]))
    assert code == 1008
    assert numbers == list(range(len(numbers))), numbers[:10]
    assert len(numbers) < ticks
    slow_sock.close()

    async def still_served():
        async with connect(b.url("/room"), max_size=None) as ws:
            await ws.send("7")
            assert (await recv(ws)).startswith(f"{7:015d} ")

    run(still_served())
    # on_disconnect once each: the slow client, the fast one, the last echo client.
    b.wait_for_log("disconnected", count=3)
    time.sleep(0.3)
    assert b.count("disconnected") == 3


def test_one_large_message_to_a_reading_client_is_not_a_slow_consumer(broker):
    # The bound is judged on what was already waiting, so a single message
    # larger than the queue limit still reaches a client that keeps up.
    b = broker(ECHO, "--max-send-queue", "64K", "--max-message-size", "4M")

    async def body():
        async with connect(b.url("/"), max_size=None) as ws:
            big = b"\x01" * (3 << 20)
            await ws.send(big)
            assert await recv(ws) == big

    run(body())
    assert b.count("is not reading") == 0


def test_out_of_descriptors_backs_off_instead_of_spinning(tmp_path, luastrands_bin):
    # Only 64 descriptors and a --max-connections the broker cannot honour:
    # accept() fails with EMFILE while the flood lasts. A level-triggered
    # listener would then wake the loop in a busy spin; the broker must
    # pause accepting instead, keep serving, and take clients again after.
    from conftest import Broker
    wrapper = tmp_path / "luastrands-64fds"
    wrapper.write_text(f'#!/bin/sh\nulimit -n 64 || exit 97\nexec "{luastrands_bin}" "$@"\n')
    wrapper.chmod(0o755)
    b = Broker(wrapper, ECHO, ["--max-connections", "1000"])
    flood = []
    try:
        b.wait_for_log("above what the open file limit")

        async def body():
            async with connect(b.url("/steady")) as steady:
                for _ in range(120):
                    flood.append(socket.create_connection(("127.0.0.1", b.port), timeout=20))
                time.sleep(0.5)
                cpu0 = cpu_seconds(b.proc.pid)
                time.sleep(2.0)
                spent = cpu_seconds(b.proc.pid) - cpu0
                assert spent < 0.5, f"{spent:.2f} s of CPU in 2 s while out of descriptors"
                await steady.send("out of fds")
                assert await recv(steady) == "out of fds"
            for s in flood:
                s.close()
            flood.clear()
            deadline = time.monotonic() + 15
            while True:
                try:
                    assert await echo_works(b.url("/after"))
                    break
                except (OSError, InvalidStatus, asyncio.TimeoutError):
                    assert time.monotonic() < deadline, "no recovery after the descriptors came back"
                    await asyncio.sleep(0.2)

        run(body())
        assert b.count("cannot accept") >= 1
    finally:
        for s in flood:
            s.close()
        assert b.stop() == 0


def cpu_seconds(pid):
    """User plus system CPU time of a process so far, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

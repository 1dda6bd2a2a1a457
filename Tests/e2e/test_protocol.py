"""Protocol edges and limits seen from the wire: ping, fragments, ordering,
close handshake, Lua memory cap, shutdown close code, many clients at once.
Hostile input (bad requests and frames, slow or silent clients, cut
connections) is in test_hostile.py."""

import asyncio

from conftest import (EXAMPLES, connect, expect_closed, frame, raw_ws, recv, run,
                      write_script)

ECHO = EXAMPLES / "echo.lua"


def test_ping_pong(broker):
    b = broker(ECHO)

    async def body():
        async with connect(b.url("/")) as ws:
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 10)
            await ws.send("still echoing")
            assert await recv(ws) == "still echoing"

    run(body())


def test_fragmented_messages(broker):
    b = broker(ECHO)

    async def body():
        async with connect(b.url("/")) as ws:
            await ws.send(["frag", "ment", "ed ✓"])
            assert await recv(ws) == "fragmented ✓"
            await ws.send([b"\x00\x01", b"\x02", b"\xff"])
            assert await recv(ws) == b"\x00\x01\x02\xff"

    run(body())


def test_raw_fragments_with_interleaved_ping(broker):
    b = broker(ECHO)
    raw = raw_ws(b.port, "/")
    try:
        raw.send(frame(1, "hel", fin=False))
        raw.send(frame(9, "p"))  # a control frame between fragments
        raw.send(frame(0, "lo", fin=True))
        got = [raw.read_frame(), raw.read_frame()]
        assert (True, 10, b"p") in got, got  # pong with the ping's payload
        assert (True, 1, b"hello") in got, got
    finally:
        raw.close()


def test_order_is_kept(broker):
    b = broker(ECHO)

    async def body():
        async with connect(b.url("/")) as ws:
            for i in range(500):
                await ws.send(f"m{i}")
            got = [await recv(ws) for _ in range(500)]
            assert got == [f"m{i}" for i in range(500)]

    run(body())


def test_many_clients_at_once(broker):
    b = broker(ECHO)

    async def client(i):
        async with connect(b.url(f"/c{i % 7}")) as ws:
            for j in range(20):
                await ws.send(f"{i}-{j}")
            return [await recv(ws, 30) for _ in range(20)]

    async def body():
        results = await asyncio.gather(*(client(i) for i in range(100)))
        for i, got in enumerate(results):
            assert got == [f"{i}-{j}" for j in range(20)]

    run(body(), timeout=120)


def test_close_handshake_echoes_code(broker):
    b = broker(ECHO)

    async def body():
        async with connect(b.url("/")) as ws:
            await ws.send("x")
            await recv(ws)
            await ws.close(1000, "bye")
            assert ws.close_code == 1000  # the broker's answering Close

    run(body())


def test_memory_limit_stops_the_handler_not_the_broker(broker):
    b = broker("""
    function on_message(message, context, is_binary)
      if message == "hog" then
        local t = {}
        for i = 1, 1e9 do t[i] = string.rep("x", 64) .. i end
      end
      strands.send_private_message(context.client_id, "echo:" .. message)
    end
    """, "--memory-limit", "16M")

    async def body():
        async with connect(b.url("/a")) as a:
            await a.send("hog")
            async with connect(b.url("/b")) as other:
                await other.send("alive?")
                assert await recv(other, 30) == "echo:alive?"

    run(body())


def test_sigterm_closes_clients_1001(broker):
    b = broker(ECHO)

    async def body():
        async with connect(b.url("/")) as ws:
            await ws.send("x")
            await recv(ws)
            b.proc.terminate()
            rcvd, _ = await expect_closed(ws, 20)
            assert rcvd is not None and rcvd.code == 1001, rcvd

    run(body())
    assert b.proc.wait(20) == 0


def test_shutdown_runs_on_disconnect_for_every_client(broker):
    b = broker("""
    function on_new_connection(context)
      strands.send_private_message(context.client_id, "welcome")
    end
    function on_disconnect(context)
      strands.log.info("bye from " .. context.room_id)
    end
    """)

    async def body():
        clients = [await connect(b.url(f"/r{i}")).__aenter__() for i in range(3)]
        for ws in clients:
            assert await recv(ws) == "welcome"
        b.proc.terminate()
        for ws in clients:
            rcvd, _ = await expect_closed(ws, 20)
            assert rcvd is not None and rcvd.code == 1001, rcvd

    run(body())
    assert b.proc.wait(20) == 0
    for i in range(3):
        b.wait_for_log(f"bye from r{i}$")  # the log reader may trail the exit
        assert b.count(f"bye from r{i}$") == 1, b.log_text()


def test_broken_module_edit_reports_module_line(broker, tmp_path):
    write_script(tmp_path / "helper.lua", "return { tag = 'h1' }\n")
    b = broker("""
    local helper = require("helper")
    function on_message(message, context, is_binary)
      strands.send_private_message(context.client_id, helper.tag .. ":" .. message)
    end
    """)

    async def body():
        async with connect(b.url("/")) as ws:
            await ws.send("a")
            assert await recv(ws) == "h1:a"
            mark = len(b.log)
            (tmp_path / "helper.lua").write_text("-- 1\n-- 2\nreturn { tag = = 'h2' }\n")
            line = b.wait_for_log(r"reload failed", start=mark)
            after = "\n".join(b.log[b.log.index(line):][:6])
            assert "helper.lua:3" in line, (
                "the 'reload failed' line lacks helper.lua:3 (one line per event); "
                f"it and the lines after it:\n{after}")
            await ws.send("b")
            assert await recv(ws) == "h1:b"

    run(body())

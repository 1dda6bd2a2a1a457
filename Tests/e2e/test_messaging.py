"""Deliveries (room, private, broadcast), send_* counts, binary frames,
message size limit, on_disconnect, runaway handlers."""

import asyncio
import os
import time

import pytest

from conftest import EXAMPLES, connect, expect_closed, recv, recv_until, run

ROUTER = """
-- Room = ?room=NAME (else the path). Commands, sent as text:
--   whoami              -> private reply with the sender's client_id
--   room:TEXT           -> TEXT to the sender's room, then "n=COUNT" to the sender
--   to:ID:TEXT          -> TEXT to client ID, then "n=COUNT" to the sender
--   all:TEXT            -> TEXT broadcast, then "n=COUNT" to the sender
--   nowhere             -> "n=COUNT" of a send to an unknown room
--   sync                -> "sync" back (proves earlier deliveries were made)
function on_connection_request(request)
  if request.query.room then request.context.room_id = request.query.room end
  return true
end

local function reply(context, text)
  strands.send_private_message(context.client_id, text)
end

function on_message(message, context, is_binary)
  if message == "whoami" then return reply(context, context.client_id) end
  if message == "sync" then return reply(context, "sync") end
  if message == "nowhere" then
    return reply(context, "n=" .. strands.send_room_message("no-such-room", "x"))
  end
  local text = message:match("^room:(.*)$")
  if text then return reply(context, "n=" .. strands.send_room_message(context.room_id, text)) end
  local id, rest = message:match("^to:([^:]*):(.*)$")
  if id then return reply(context, "n=" .. strands.send_private_message(id, rest)) end
  text = message:match("^all:(.*)$")
  if text then return reply(context, "n=" .. strands.broadcast_message(text)) end
  reply(context, "unknown:" .. message)
end
"""


async def _sync(ws):
    """Round trip through the broker: whatever was queued for ws before
    comes first, so anything but 'sync' means an unexpected delivery."""
    await ws.send("sync")
    msg = await recv(ws)
    assert msg == "sync", f"unexpected delivery {msg!r}"


def test_room_delivery(broker):
    b = broker(ROUTER)

    async def body():
        async with connect(b.url("/r1")) as a, connect(b.url("/r1")) as bb, \
                connect(b.url("/r2")) as c:
            await a.send("room:hello r1")
            assert await recv(a) == "hello r1"  # the sender is in the room too
            assert await recv(a) == "n=2"
            assert await recv(bb) == "hello r1"
            await _sync(c)  # r2 got nothing
            await c.send("room:only r2")
            assert await recv(c) == "only r2"
            assert await recv(c) == "n=1"
            await _sync(a)
            await _sync(bb)

    run(body())


def test_room_from_query_overrides_path(broker):
    b = broker(ROUTER)

    async def body():
        async with connect(b.url("/x?room=shared")) as a, connect(b.url("/y?room=shared")) as bb:
            await a.send("room:hey")
            assert await recv(bb) == "hey"

    run(body())


def test_private_delivery(broker):
    b = broker(ROUTER)

    async def body():
        async with connect(b.url("/r1")) as a, connect(b.url("/r1")) as bb, \
                connect(b.url("/r2")) as c:
            await c.send("whoami")
            c_id = await recv(c)
            await a.send(f"to:{c_id}:psst")
            assert await recv(c) == "psst"
            assert await recv(a) == "n=1"
            await _sync(bb)  # a room-mate of the sender got nothing
            await _sync(a)
            # unknown client id -> 0
            await a.send("to:00000000-0000-4000-8000-000000000000:lost")
            assert await recv(a) == "n=0"
            await a.send("nowhere")
            assert await recv(a) == "n=0"

    run(body())


def test_broadcast_reaches_all_rooms(broker):
    b = broker(ROUTER)

    async def body():
        async with connect(b.url("/r1")) as a, connect(b.url("/r2")) as bb, \
                connect(b.url("/r3")) as c, connect(b.url("/")) as d:
            await bb.send("all:to everyone")
            for ws in (a, bb, c, d):
                assert await recv(ws) == "to everyone"
            assert await recv(bb) == "n=4"
            for ws in (a, bb, c, d):
                await _sync(ws)

    run(body())


def test_send_counts_follow_membership(broker):
    b = broker(ROUTER)

    async def body():
        async with connect(b.url("/r")) as a:
            await a.send("room:1")
            assert [await recv(a), await recv(a)] == ["1", "n=1"]
            async with connect(b.url("/r")) as bb, connect(b.url("/r")) as c:
                await a.send("room:3")
                assert [await recv(a), await recv(a)] == ["3", "n=3"]
                await recv(bb), await recv(c)
            # bb and c closed: poll until the room is back to one member.
            deadline = time.monotonic() + 20
            while True:
                await a.send("room:again")
                got = [await recv(a), await recv(a)]
                assert got[0] == "again"
                if got[1] == "n=1":
                    break
                assert time.monotonic() < deadline, f"room still counts closed clients: {got}"
                await asyncio.sleep(0.1)

    run(body())


def test_metadata_from_gate_visible_in_on_message(broker):
    b = broker("""
    function on_connection_request(request)
      request.context.metadata.name = request.query.name
      request.context.metadata.n = 1
      return true
    end
    function on_message(message, context, is_binary)
      strands.send_private_message(context.client_id,
        context.metadata.name .. ":" .. context.metadata.n .. ":" .. message)
    end
    """)

    async def body():
        async with connect(b.url("/?name=ada")) as a, connect(b.url("/?name=bob")) as bo:
            await a.send("x")
            await bo.send("y")
            assert await recv(a) == "ada:1:x"
            assert await recv(bo) == "bob:1:y"

    run(body())


ECHO = EXAMPLES / "echo.lua"


def test_echo_binary_and_text(broker):
    b = broker(ECHO)

    async def body():
        async with connect(b.url("/any")) as ws:
            payload = bytes(range(256)) + b"\x00\xff"
            await ws.send(payload)
            got = await recv(ws)
            assert isinstance(got, bytes) and got == payload
            await ws.send("héllo ✓")
            got = await recv(ws)
            assert isinstance(got, str) and got == "héllo ✓"
            await ws.send(b"")
            assert await recv(ws) == b""
            await ws.send("")
            assert await recv(ws) == ""

    run(body())


def test_send_with_binary_option(broker):
    b = broker("""
    function on_message(message, context, is_binary)
      strands.send_private_message(context.client_id, "as-bin:" .. message, { binary = true })
      strands.send_room_message(context.room_id, "as-text:" .. message)
      strands.broadcast_message("bc-bin", { binary = true })
    end
    """)

    async def body():
        async with connect(b.url("/r")) as ws:
            await ws.send(b"abc")
            assert await recv(ws) == b"as-bin:abc"
            assert await recv(ws) == "as-text:abc"
            assert await recv(ws) == b"bc-bin"

    run(body())


MIB = 1024 * 1024


def test_one_mib_round_trip(broker):
    b = broker(ECHO)

    async def body():
        async with connect(b.url("/"), max_size=None) as ws:
            data = os.urandom(MIB)
            await ws.send(data)
            assert await recv(ws, 30) == data
            text = "é" * (MIB // 2)  # 1 MiB of UTF-8
            await ws.send(text)
            assert await recv(ws, 30) == text
            # still usable
            await ws.send("after")
            assert await recv(ws) == "after"

    run(body())


def test_over_one_mib_closes_1009(broker):
    b = broker(ECHO)

    async def body():
        async with connect(b.url("/"), max_size=None) as ws:
            await ws.send(b"x" * (MIB + 1))
            rcvd, got = await expect_closed(ws, 30)
            assert got == []
            assert rcvd is not None and rcvd.code == 1009, rcvd
        # the broker still serves others
        async with connect(b.url("/")) as ws:
            await ws.send("ok")
            assert await recv(ws) == "ok"

    run(body())


def test_max_message_size_from_environment(broker):
    b = broker(ECHO, env={"LUASTRANDS_MAX_MESSAGE_SIZE": "1000"})

    async def body():
        async with connect(b.url("/")) as ws:
            await ws.send("b" * 1001)
            rcvd, _ = await expect_closed(ws)
            assert rcvd is not None and rcvd.code == 1009, rcvd

    run(body())


# --- on_disconnect ---------------------------------------------------------

DISCONNECT = """
function on_message(message, context, is_binary)
  if message == "whoami" then
    strands.send_private_message(context.client_id, context.client_id)
  else
    strands.send_private_message(context.client_id, message)
  end
end
function on_disconnect(context)
  if context.room_id ~= "obs" then
    strands.send_room_message("obs", "bye:" .. context.client_id .. ":" .. context.metadata.tag)
  end
end
function on_connection_request(request)
  if request.path == "/obs" then request.context.room_id = "obs" end
  request.context.metadata.tag = request.query.tag or "-"
  return true
end
"""


async def _expect_one_bye(obs, tag):
    msg = await recv(obs, 20)
    assert msg.startswith("bye:") and msg.endswith(":" + tag), msg
    # A second on_disconnect for the same client would be queued by now or
    # shortly after: wait a little, then sync.
    await asyncio.sleep(0.5)
    await obs.send("sync")
    nxt = await recv(obs)
    assert nxt == "sync", f"on_disconnect ran again: {nxt!r}"
    return msg


# A TCP FIN or reset without a Close frame, mid-frame or not: test_hostile.py.
@pytest.mark.parametrize("how", ["close-frame", "too-big"])
def test_on_disconnect_exactly_once(broker, how):
    b = broker(DISCONNECT, "--max-message-size", "1000")

    async def body():
        async with connect(b.url("/obs")) as obs:
            tag = how
            if how == "close-frame":
                async with connect(b.url(f"/room?tag={tag}")) as c:
                    await c.send("whoami")
                    cid = await recv(c)
                msg = await _expect_one_bye(obs, tag)
                assert msg == f"bye:{cid}:{tag}"
            else:  # too-big: the broker closes (1009)
                async with connect(b.url(f"/room?tag={tag}")) as c:
                    await c.send("x" * 1001)
                    rcvd, _ = await expect_closed(c)
                    assert rcvd is not None and rcvd.code == 1009, rcvd
                await _expect_one_bye(obs, tag)

    run(body())


def test_on_disconnect_for_each_of_many(broker):
    b = broker(DISCONNECT)

    async def body():
        async with connect(b.url("/obs")) as obs:
            clients = [await connect(b.url(f"/room?tag=c{i}")) for i in range(5)]
            for c in clients:
                await c.close()
            byes = []
            for _ in range(5):
                byes.append(await recv(obs, 20))
            await asyncio.sleep(0.5)
            await obs.send("sync")
            assert await recv(obs) == "sync"
            assert sorted(m.rsplit(":", 1)[1] for m in byes) == [f"c{i}" for i in range(5)]

    run(body())


# --- runaway handler -------------------------------------------------------

SPIN = """
function on_message(message, context, is_binary)
  if message == "spin" then
    while true do end
  end
  strands.send_private_message(context.client_id, "echo:" .. message)
end
"""


def test_infinite_loop_is_stopped(broker):
    b = broker(SPIN, "--handler-budget", "1")

    async def body():
        async with connect(b.url("/a")) as a, connect(b.url("/b")) as other:
            await a.send("spin")
            t0 = time.monotonic()
            await other.send("still there?")
            assert await recv(other, 20) == "echo:still there?"
            elapsed = time.monotonic() - t0
            assert elapsed < 10, f"the broker answered only after {elapsed:.1f}s"
        # and new clients are served
        async with connect(b.url("/c")) as c:
            await c.send("x")
            assert await recv(c) == "echo:x"

    run(body())


def test_infinite_loop_default_budget(broker):
    b = broker(SPIN)

    async def body():
        async with connect(b.url("/a")) as a, connect(b.url("/b")) as other:
            await a.send("spin")
            t0 = time.monotonic()
            await other.send("ping")
            assert await recv(other, 20) == "echo:ping"
            assert time.monotonic() - t0 < 10

    run(body())


def test_runtime_error_in_on_message_calls_on_error(broker):
    b = broker("""
    function on_message(message, context, is_binary)
      if message == "fail" then error("deliberate failure") end
      strands.send_private_message(context.client_id, "echo:" .. message)
    end
    function on_error(err, context)
      strands.send_private_message(context.client_id, "on_error:" .. tostring(err))
    end
    """)

    async def body():
        async with connect(b.url("/")) as ws:
            await ws.send("fail")
            msg = await recv(ws)
            assert msg.startswith("on_error:") and "deliberate failure" in msg, msg
            await ws.send("ok")
            assert await recv(ws) == "echo:ok"

    run(body())


# --- the shipped chat example ---------------------------------------------


def test_chat_example(broker):
    b = broker(EXAMPLES / "chat.lua")

    async def body():
        async with connect(b.url("/lobby?name=ada")) as ada, \
                connect(b.url("/lobby?name=bob")) as bob:
            # bob's join notice reaching ada proves both are in the room
            await recv_until(ada, lambda m: m == "* bob joined lobby")
            await ada.send("hello")
            await recv_until(ada, lambda m: m == "ada: hello")
            await recv_until(bob, lambda m: m == "ada: hello")
        async with connect(b.url("/lobby?name=" + "x" * 40)) as bad:
            rcvd, _ = await expect_closed(bad)
            assert rcvd is not None and rcvd.code == 4000

    run(body())

"""Hot reload: file edits (atomic replace and in-place rewrite), broken edits,
SIGHUP, modules required from the script's folder. Connections stay open."""

import asyncio
import json
import signal
import time


from conftest import connect, recv, run, write_script

LOADED = r"script loaded"


def versioned(tag):
    return f"""
    function on_message(message, context, is_binary)
      strands.send_private_message(context.client_id, "{tag}:" .. message)
    end
    """


async def until_reply(ws, prefix, timeout=20.0, probe="ping"):
    """Keeps sending `probe` on ws until a reply starts with prefix.
    Returns the replies seen before. The connection must stay open."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await ws.send(probe)
        try:
            while True:
                msg = await asyncio.wait_for(ws.recv(), 0.5)
                if msg.startswith(prefix):
                    return seen
                seen.append(msg)
        except asyncio.TimeoutError:
            pass  # e.g. a moment with no handler; probe again
    raise AssertionError(f"no reply starting with {prefix!r} within {timeout}s; got {seen[-10:]!r}")


def test_reload_on_atomic_replace(broker, tmp_path):
    b = broker(versioned("v1"))
    script = b.script

    async def body():
        async with connect(b.url("/")) as ws:
            await ws.send("a")
            assert await recv(ws) == "v1:a"
            write_script(script, versioned("v2"), atomic=True)
            seen = await until_reply(ws, "v2:")
            assert all(m == "v1:ping" for m in seen), seen
            # and again, on the same connection
            write_script(script, versioned("v3"), atomic=True)
            await until_reply(ws, "v3:")
            await ws.send("b")
            assert await recv(ws) == "v3:b"

    run(body())
    assert b.count(LOADED) >= 3, b.log_text()


def test_reload_on_in_place_rewrite(broker):
    b = broker(versioned("v1"))

    async def body():
        async with connect(b.url("/")) as ws, connect(b.url("/other")) as other:
            await ws.send("a")
            assert await recv(ws) == "v1:a"
            write_script(b.script, versioned("v2"), atomic=False)
            await until_reply(ws, "v2:")
            await other.send("c")
            assert await recv(other) == "v2:c"
            write_script(b.script, versioned("v3"), atomic=False)
            await until_reply(other, "v3:")
            await until_reply(ws, "v3:")

    run(body())


def test_reload_keeps_rooms_and_metadata(broker):
    b = broker("""
    function on_connection_request(request)
      request.context.metadata.name = request.query.name
      return true
    end
    function on_message(message, context, is_binary)
      strands.send_room_message(context.room_id, "v1 " .. context.metadata.name .. ": " .. message)
    end
    """)

    async def body():
        async with connect(b.url("/lobby?name=ada")) as ada, connect(b.url("/lobby?name=bob")) as bob:
            await ada.send("hi")
            assert await recv(ada) == "v1 ada: hi"
            assert await recv(bob) == "v1 ada: hi"
            write_script(b.script, """
            function on_message(message, context, is_binary)
              strands.send_room_message(context.room_id, "v2 " .. context.metadata.name .. ": " .. message)
            end
            """)
            await until_reply(bob, "v2 bob: ")
            # drain ada's copies of bob's probes, then check the room again
            await ada.send("again")
            while (msg := await recv(ada)) != "v2 ada: again":
                assert msg.startswith(("v1 bob: ", "v2 bob: ")), msg
            while (msg := await recv(bob)) != "v2 ada: again":
                assert msg.startswith(("v1 bob: ", "v2 bob: ")), msg

    run(body())


BROKEN = """
-- line 1
function on_message(message, context, is_binary)
  local x = = 1
end
"""


def test_broken_edit_keeps_old_code(broker):
    b = broker(versioned("v1"), name="app.lua")

    async def body():
        async with connect(b.url("/")) as ws:
            await ws.send("a")
            assert await recv(ws) == "v1:a"
            mark = len(b.log)
            write_script(b.script, BROKEN)
            line = b.wait_for_log(r"reload failed", start=mark)
            assert "app.lua:3" in line, f"reload failure without file:line: {line!r}"
            # old code still runs, on the same connection and for new ones
            await ws.send("b")
            assert await recv(ws) == "v1:b"
            async with connect(b.url("/new")) as ws2:
                await ws2.send("c")
                assert await recv(ws2) == "v1:c"
            # a fixed edit is picked up afterwards
            write_script(b.script, versioned("v2"))
            await until_reply(ws, "v2:")

    run(body())


def test_load_time_error_on_reload_keeps_old_code(broker):
    b = broker(versioned("v1"), name="app.lua")

    async def body():
        async with connect(b.url("/")) as ws:
            mark = len(b.log)
            write_script(b.script, """
            function on_message(message, context, is_binary)
              strands.send_private_message(context.client_id, "bad:" .. message)
            end
            error("refusing to load")
            """)
            line = b.wait_for_log(r"reload failed", start=mark)
            assert "app.lua:4" in line and "refusing to load" in line, line
            await ws.send("b")
            assert await recv(ws) == "v1:b"

    run(body())


def test_sighup_reload(broker):
    b = broker(versioned("v1"), "--no-watch")

    async def body():
        async with connect(b.url("/")) as ws:
            await ws.send("a")
            assert await recv(ws) == "v1:a"
            loaded = b.count(LOADED)
            write_script(b.script, versioned("v2"))
            # --no-watch: the edit alone changes nothing (give a watcher time
            # it would have needed: several debounce periods)
            await asyncio.sleep(1.0)
            await ws.send("b")
            assert await recv(ws) == "v1:b"
            b.signal(signal.SIGHUP)
            b.wait_for_log(LOADED, count=loaded + 1)
            await until_reply(ws, "v2:")

    run(body())


def test_sighup_reload_with_watch(broker):
    b = broker(versioned("v1"))

    async def body():
        async with connect(b.url("/")) as ws:
            loaded = b.count(LOADED)
            b.signal(signal.SIGHUP)
            b.wait_for_log(LOADED, count=loaded + 1)
            await ws.send("a")
            assert await recv(ws) == "v1:a"

    run(body())


def test_required_module_reloaded(broker, tmp_path):
    write_script(tmp_path / "greet.lua", """
    local M = {}
    function M.word() return "hello" end
    return M
    """)
    b = broker("""
    local greet = require("greet")
    function on_message(message, context, is_binary)
      strands.send_private_message(context.client_id, greet.word() .. " " .. message)
    end
    """)

    async def body():
        async with connect(b.url("/")) as ws:
            await ws.send("a")
            assert await recv(ws) == "hello a"
            write_script(tmp_path / "greet.lua", """
            local M = {}
            function M.word() return "bonjour" end
            return M
            """)
            await until_reply(ws, "bonjour ")

    run(body())


def test_require_strands_module(broker):
    b = broker("""
    local s = require("strands")
    function on_message(message, context, is_binary)
      local t = s.json.decode(message)
      local now = s.now()
      s.log.info("got " .. t.k)
      s.send_private_message(context.client_id,
        s.json.encode({ k = t.k, same = (s == strands), now_is_number = type(now) == "number" }))
    end
    """)

    async def body():
        async with connect(b.url("/")) as ws:
            await ws.send('{"k": "value-42"}')
            got = json.loads(await recv(ws))
            assert got == {"k": "value-42", "same": True, "now_is_number": True}

    run(body())
    b.wait_for_log("got value-42")

"""on_connection_request: accept, reject (403 / chosen status / 4xxx close),
fail closed on errors, and the request fields a script sees."""

import json
import re

import pytest
from websockets.exceptions import InvalidStatus

from conftest import connect, expect_closed, recv, run

GATE = """
function on_connection_request(request)
  local p = request.path
  if p == "/ok" then return true end
  if p == "/silent" then return end
  if p == "/silent-refused" then request.accepted = false; return end
  if p == "/no" then return false end
  if p == "/401" then return false, 401 end
  if p == "/503" then return false, 503 end
  if p == "/close" then return false, 4001, "go away" end
  if p == "/boom" then error("boom in gate") end
  if p == "/nil-index" then local t = nil; return t.x end
  if p == "/spin" then while true do end end
  if p == "/exit" then os.exit(3) end
  return true
end

function on_message(message, context, is_binary)
  strands.send_private_message(context.client_id, "echo:" .. message)
end
"""


async def _status_of(url):
    try:
        async with connect(url):
            pass
    except InvalidStatus as e:
        return e.response.status_code
    return 101


@pytest.mark.parametrize("path", ["/ok", "/silent", "/other"])
def test_accept(broker, path):
    b = broker(GATE)

    async def body():
        async with connect(b.url(path)) as ws:
            await ws.send("hi")
            assert await recv(ws) == "echo:hi"

    run(body())


@pytest.mark.parametrize("path,status", [
    ("/no", 403),
    ("/silent-refused", 403),
    ("/401", 401),
    ("/503", 503),
    ("/boom", 500),
    ("/nil-index", 500),
    ("/spin", 500),  # stopped at the handler budget: fails closed
    ("/exit", 500),  # os.exit raises instead of ending the broker
])
def test_reject_with_http_status(broker, path, status):
    b = broker(GATE)
    assert run(_status_of(b.url(path))) == status
    # The broker keeps serving after a rejection or a failing handler.
    assert run(_status_of(b.url("/ok"))) == 101


def test_reject_with_close_code(broker):
    b = broker(GATE)

    async def body():
        async with connect(b.url("/close")) as ws:
            rcvd, got = await expect_closed(ws)
            assert got == []
            assert rcvd is not None, "connection dropped without a close frame"
            assert rcvd.code == 4001
            assert rcvd.reason == "go away"

    run(body())


def test_error_in_gate_is_logged_and_others_served(broker):
    b = broker(GATE)
    assert run(_status_of(b.url("/boom"))) == 500
    b.wait_for_log("boom in gate")


def test_rejected_connection_runs_no_other_handler(broker):
    b = broker("""
    function on_connection_request(request)
      if request.path == "/obs" then request.context.room_id = "obs"; return true end
      return false
    end
    function on_new_connection(context)
      if context.room_id ~= "obs" then strands.send_room_message("obs", "new:" .. context.room_id) end
    end
    function on_disconnect(context)
      if context.room_id ~= "obs" then strands.send_room_message("obs", "gone:" .. context.room_id) end
    end
    function on_message(message, context)
      strands.send_private_message(context.client_id, "sync")
    end
    """)

    async def body():
        async with connect(b.url("/obs")) as obs:
            assert await _status_of(b.url("/nope")) == 403
            await obs.send("x")
            assert await recv(obs) == "sync", "a rejected client reached on_new_connection/on_disconnect"

    run(body())


UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

FIELDS = """
function on_connection_request(request)
  local md = request.context.metadata
  md.url = request.url
  md.path = request.path
  md.query = request.query
  md.remote_addr = request.remote_addr
  md.remote_port = request.remote_port
  md.x_one = request.headers["x-one"]
  md.x_one_mixed = request.headers["X-One"]
  md.x_multi = request.headers["x-multi"]
  md.x_multi_upper = request.headers["X-MULTI"]
  md.host = request.headers.host
  md.missing = request.headers["x-not-sent"] == nil
  md.gate_client_id = request.context.client_id
  md.gate_room_id = request.context.room_id
  md.nested = { n = 42, list = { 1, 2, 3 }, flag = true }
  return true
end

function on_message(message, context, is_binary)
  strands.send_private_message(context.client_id, strands.json.encode(context))
end
"""


def test_request_fields_visible_to_script(broker):
    b = broker(FIELDS)

    async def body():
        url = b.url("/chat?token=abc&name=J%C3%BCrgen%20X&empty=")
        headers = [("X-One", "first"), ("X-Multi", "a"), ("X-Multi", "b")]
        async with connect(url, additional_headers=headers) as ws:
            local_port = ws.local_address[1]
            await ws.send("report")
            ctx = json.loads(await recv(ws))
        return ctx, local_port

    ctx, local_port = run(body())
    md = ctx["metadata"]
    assert md["url"] == "/chat?token=abc&name=J%C3%BCrgen%20X&empty="
    assert md["path"] == "/chat"
    assert md["query"]["token"] == "abc"
    assert md["query"]["name"] == "Jürgen X"
    assert md["query"].get("empty") == ""
    assert md["remote_addr"] == "127.0.0.1"
    assert md["remote_port"] == local_port
    assert md["x_one"] == "first"
    assert md["x_one_mixed"] == "first", "header lookup is not case-insensitive"
    assert md["x_multi"] == ["a", "b"], "a repeated header should be an array"
    assert md["x_multi_upper"] == ["a", "b"]
    assert md["host"] == f"127.0.0.1:{b.port}"
    assert md["missing"] is True
    assert UUID4.match(md["gate_client_id"]), md["gate_client_id"]
    assert md["gate_room_id"] == "chat"
    assert md["nested"] == {"n": 42, "list": [1, 2, 3], "flag": True}
    # The context handed to on_message is the one the gate left.
    assert ctx["client_id"] == md["gate_client_id"]
    assert ctx["room_id"] == "chat"


def test_client_ids_are_distinct_uuid4(broker):
    b = broker(FIELDS)

    async def one():
        async with connect(b.url("/")) as ws:
            await ws.send("report")
            return json.loads(await recv(ws))

    async def body():
        return [await one() for _ in range(3)]

    ctxs = run(body())
    ids = [c["client_id"] for c in ctxs]
    assert len(set(ids)) == 3
    for c in ctxs:
        assert UUID4.match(c["client_id"])
        assert c["room_id"] == ""


def test_gate_can_change_room_and_metadata(broker):
    b = broker("""
    function on_connection_request(request)
      request.context.room_id = "room-" .. (request.query.r or "none")
      request.context.metadata = { user = request.query.u, level = 7 }
      return true
    end
    function on_message(message, context, is_binary)
      strands.send_room_message(context.room_id,
        context.metadata.user .. "@" .. context.room_id .. ":" .. context.metadata.level .. ":" .. message)
    end
    """)

    async def body():
        async with connect(b.url("/x?r=1&u=ann")) as a, connect(b.url("/y?r=1&u=bo")) as bo:
            await a.send("hi")
            assert await recv(a) == "ann@room-1:7:hi"
            assert await recv(bo) == "ann@room-1:7:hi"

    run(body())

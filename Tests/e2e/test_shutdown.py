"""Graceful shutdown seen from the wire: the listener closes first, queued
bytes still reach their clients ahead of close 1001, on_disconnect runs for
each, and the process exits 0 within a bounded time even if clients never
answer."""

import signal
import socket
import struct
import time

from conftest import raw_ws

BULK = """
function on_message(message, context, is_binary)
  if message == "bulk" then
    for i = 1, 12 do
      strands.send_private_message(context.client_id, string.rep(string.char(64 + i), 1 << 20), { binary = true })
    end
    strands.log.info("queued bulk for " .. context.client_id)
  end
end

function on_disconnect(context)
  strands.log.info("disconnected " .. context.client_id)
end
"""


def wait_exit(b, bound):
    t0 = time.monotonic()
    rc = b.proc.wait(bound)
    return rc, time.monotonic() - t0


def test_queued_bytes_reach_the_client_before_close_1001(broker):
    b = broker(BULK, "--shutdown-timeout", "20")
    raw = raw_ws(b.port, "/")
    try:
        # 12 MiB queued while the client reads nothing: more than the kernel's
        # socket buffers hold, so most of it waits in the broker's queue.
        from conftest import frame
        raw.send(frame(1, "bulk"))
        b.wait_for_log("queued bulk for")
        b.signal(signal.SIGTERM)
        b.wait_for_log("SIGTERM: shutting down")
        for i in range(1, 13):
            fin, op, payload = raw.read_frame()
            assert (fin, op, len(payload)) == (True, 2, 1 << 20), (i, op, len(payload))
            assert payload == bytes([64 + i]) * (1 << 20), i
        code, reason = raw.read_close()
        assert code == 1001, (code, reason)
        raw.send(frame(8, struct.pack("!H", 1001)))
        assert raw.at_eof(10)  # the broker ends the TCP connection first
        raw.close()
        rc, took = wait_exit(b, 20)
        assert rc == 0
        assert took < 10
    finally:
        raw.close()
    assert b.count("disconnected") == 1


def test_clients_that_never_answer_do_not_hold_the_exit(broker):
    b = broker(BULK, "--shutdown-timeout", "1")
    silent = [raw_ws(b.port, f"/s{i}") for i in range(3)]  # they read nothing, answer nothing
    try:
        time.sleep(0.2)
        t0 = time.monotonic()
        b.signal(signal.SIGINT)
        rc = b.proc.wait(15)
        took = time.monotonic() - t0
        assert rc == 0
        assert took < 6, took  # the 1 s shutdown timeout plus the sweep, with room for a slow machine
        b.wait_for_log("did not finish closing")
        assert b.count("disconnected") == 3
    finally:
        for r in silent:
            r.close()


def test_listener_closes_at_once(broker):
    b = broker(BULK, "--shutdown-timeout", "5")
    holder = raw_ws(b.port, "/hold")  # keeps the broker in its shutdown window
    try:
        b.signal(signal.SIGTERM)
        b.wait_for_log("SIGTERM: shutting down")
        time.sleep(0.2)
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", b.port))
            refused = False
        except ConnectionRefusedError:
            refused = True
        finally:
            s.close()
        assert refused, "a new connection was accepted during shutdown"
        assert b.proc.poll() is None  # still closing the held client
        code, _ = holder.read_close()
        assert code == 1001
        from conftest import frame
        holder.send(frame(8, struct.pack("!H", 1001)))
        assert holder.at_eof(10)
        assert b.proc.wait(10) == 0
    finally:
        holder.close()

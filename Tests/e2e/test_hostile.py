"""Hostile and broken clients, seen from the wire: bad upgrade requests, bad
frames, slow or silent peers, connections cut mid-frame, data after Close.

Every case asserts the broker's defined answer (an exact HTTP status line, or
the close code of its Close frame, then the end of the TCP stream) and then
that a well-behaved client is still served by the same broker process."""

import asyncio
import re
import select
import socket
import struct
import time
from dataclasses import dataclass

import pytest

from conftest import KEY, connect, frame, raw_ws, recv, run, upgrade_request

# Echoes every message, and logs what the lifecycle assertions count.
TRACKED = """
function on_new_connection(context)
  strands.log.info("joined " .. context.room_id)
end
function on_message(message, context, is_binary)
  strands.log.info("message in " .. context.room_id .. " (" .. #message .. " bytes)")
  strands.send_private_message(context.client_id, message, { binary = is_binary })
end
function on_disconnect(context)
  strands.log.info("on_disconnect " .. context.room_id)
end
"""

PROMPT = 8.0  # upper bound for an answer that needs no timer: generous on a busy machine


# --- helpers -----------------------------------------------------------------


def assert_still_serving(b):
    """A well-behaved client (python websockets) gets its text and binary echoes."""
    assert b.proc.poll() is None, f"broker exited with {b.proc.returncode}\n{b.log_text()}"

    async def body():
        async with connect(b.url("/well-behaved")) as ws:
            await ws.send("still serving ✓")
            assert await recv(ws) == "still serving ✓"
            await ws.send(b"\x00\xff")
            assert await recv(ws) == b"\x00\xff"

    run(body(), timeout=30)


def on_disconnect_pattern(room):
    return rf"script: on_disconnect {re.escape(room)}$"


def assert_on_disconnect_once(b, room):
    """on_disconnect ran for ROOM's client, and only once, even after the
    socket is fully gone and the loop has served others."""
    b.wait_for_log(on_disconnect_pattern(room))
    assert_still_serving(b)
    time.sleep(0.1)  # only gives a second call time to show up; cannot fail a correct broker
    assert b.count(on_disconnect_pattern(room)) == 1, b.log_text()


def read_to_eof(sock, timeout=PROMPT):
    """Everything the peer sends until it closes; fails on a reset or a timeout."""
    sock.settimeout(timeout)
    buf = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise AssertionError(f"connection still open after {timeout}s; got {buf!r}") from None
        except ConnectionResetError:
            raise AssertionError(f"connection reset instead of closed; got {buf!r}") from None
        if not chunk:
            return buf
        buf += chunk


@dataclass
class Response:
    status_line: str
    headers: dict
    body: bytes
    elapsed: float


def parse_response(data: bytes, elapsed: float, to_head=False) -> Response:
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"no complete HTTP response head: {data!r}"
    lines = head.decode("ascii").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        assert colon, f"bad header line {line!r} in {data!r}"
        headers[name.strip().lower()] = value.strip()
    # An answer to HEAD carries the Content-Length a GET would get, and no content.
    if "content-length" in headers and not to_head:
        assert len(body) == int(headers["content-length"]), data
    return Response(lines[0], headers, body, elapsed)


def connection_options(r: Response):
    return {t.strip().lower() for t in r.headers.get("connection", "").split(",")}


def http_exchange(port, data: bytes, timeout=PROMPT) -> Response:
    """Sends DATA on a fresh connection and reads until the broker closes it."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    t0 = time.monotonic()
    try:
        s.sendall(data)
        got = read_to_eof(s, timeout)
    finally:
        s.close()
    return parse_response(got, time.monotonic() - t0, to_head=data.startswith(b"HEAD "))




STATUS_LINES = {
    400: "HTTP/1.1 400 Bad Request",
    405: "HTTP/1.1 405 Method Not Allowed",
    408: "HTTP/1.1 408 Request Timeout",
    426: "HTTP/1.1 426 Upgrade Required",
    431: "HTTP/1.1 431 Request Header Fields Too Large",
    505: "HTTP/1.1 505 HTTP Version Not Supported",
}


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


def with_first_byte(data: bytes, bits: int) -> bytes:
    return bytes([data[0] | bits]) + data[1:]


def header_only(opcode, length, fin=True):
    """A masked frame header declaring LENGTH payload bytes, and no payload."""
    b0 = (0x80 if fin else 0) | opcode
    if length < 126:
        head = struct.pack("!BB", b0, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, length)
    return head + b"\x11\x22\x33\x44"


def frames_until_eof(raw, timeout=PROMPT):
    """Every frame the broker sends until it closes the TCP stream cleanly."""
    raw.sock.settimeout(timeout)
    got = []
    while True:
        try:
            got.append(raw.read_frame())
        except EOFError:
            assert raw.buf == b"", f"stream ended inside a frame: {raw.buf!r}"
            return got
        except socket.timeout:
            raise AssertionError(f"connection still open after {timeout}s; got {got!r}") from None
        except ConnectionResetError:
            raise AssertionError(f"connection reset instead of closed; got {got!r}") from None


def decode_close(payload):
    assert len(payload) >= 2, f"close frame without a code: {payload!r}"
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8")


# --- the opening handshake ---------------------------------------------------

HANDSHAKE_CASES = [
    # request line
    ("garbage-request-line", b"hello there\r\n\r\n", 400),
    ("garbage-lines-without-end", b"hello there\r\nand more\r\n", 400),  # judged at its line end
    ("missing-http-version", upgrade_request("GET /h"), 400),
    ("http-1.0", upgrade_request("GET /h HTTP/1.0"), 505),
    ("http-2.0-request-line", upgrade_request("GET /h HTTP/2.0"), 505),
    ("bad-version-token", upgrade_request("GET /h HTTP/1.1x"), 400),
    ("lower-case-version-token", upgrade_request("GET /h http/1.1"), 400),
    ("version-without-minor", upgrade_request("GET /h HTTP/1"), 400),
    ("double-space", upgrade_request("GET  /h HTTP/1.1"), 400),
    ("control-byte-in-target", upgrade_request("GET /h\x01 HTTP/1.1"), 400),
    # method
    ("post", upgrade_request("POST /h HTTP/1.1"), 405),
    ("put", upgrade_request("PUT /h HTTP/1.1"), 405),
    ("head", upgrade_request("HEAD /h HTTP/1.1"), 405),
    ("lower-case-get", upgrade_request("get /h HTTP/1.1"), 405),
    # not (quite) an upgrade: 426 names the protocol this port speaks
    ("plain-http-get", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 426),
    ("upgrade-h2c", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
                    b"Upgrade: h2c\r\n\r\n", 426),
    ("upgrade-without-connection",
     b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
     b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 13\r\n\r\n", 426),
    # key
    ("missing-key", upgrade_request(key=None), 400),
    ("key-not-base64", upgrade_request(key="not a key at all"), 400),
    ("key-of-15-bytes", upgrade_request(key="AAAAAAAAAAAAAAAAAAAA"), 400),
    ("key-of-17-bytes", upgrade_request(key="A" * 23 + "="), 400),
    ("key-without-padding", upgrade_request(key=KEY.rstrip("=")), 400),
    ("two-keys", upgrade_request(extra=[f"Sec-WebSocket-Key: {KEY}"]), 400),
    # WebSocket version: 426 names the one this broker speaks (RFC 6455 §4.4)
    ("missing-ws-version", upgrade_request(version=None), 426),
    ("ws-version-8", upgrade_request(version="8"), 426),
    ("ws-version-list", upgrade_request(version="13, 8"), 426),
    # Host (RFC 9112 §3.2: exactly one)
    ("missing-host", upgrade_request(host=None), 400),
    ("two-hosts", upgrade_request(extra=["Host: other.example"]), 400),
    # malformed header fields
    ("header-without-colon", upgrade_request(extra=["X-Broken header"]), 400),
    ("obsolete-line-folding", upgrade_request(extra=["X-A: 1", " folded"]), 400),
    # not HTTP at all
    ("tls-client-hello", bytes.fromhex("16030100c4010000c00303") + bytes(range(32)), 400),
    ("nul-bytes", b"\x00" * 64, 400),
    ("all-byte-values", bytes(range(256)) * 4, 400),
]


@pytest.mark.parametrize("request_bytes, status", [c[1:] for c in HANDSHAKE_CASES],
                         ids=[c[0] for c in HANDSHAKE_CASES])
def test_bad_upgrade_request_gets_status_and_close(broker, request_bytes, status):
    b = broker(TRACKED)
    r = http_exchange(b.port, request_bytes)  # fails unless the broker closes
    assert r.status_line == STATUS_LINES[status], r
    assert "close" in connection_options(r), r
    assert r.elapsed < PROMPT
    if status == 426:
        # RFC 9110 §15.5.22 and §7.8; RFC 6455 §4.4
        assert r.headers.get("upgrade") == "websocket", r
        assert "upgrade" in connection_options(r), r
        assert r.headers.get("sec-websocket-version") == "13", r
    if status == 405:
        assert r.headers.get("allow") == "GET", r
    if request_bytes.startswith(b"HEAD "):
        assert r.body == b"", r  # a response to HEAD has no content (RFC 9110 §9.3.2)
    else:
        assert r.body, r  # the others say why, in words
    assert b.count(r"script: joined") == 0, "a refused request reached the script"
    assert_still_serving(b)


def test_oversized_head_gets_431(broker):
    b = broker(TRACKED, "--max-head-size", "2048")
    # Just under the limit is accepted...
    small = upgrade_request(extra=["X-Pad: " + "a" * 1500])
    assert len(small) < 2048
    s = socket.create_connection(("127.0.0.1", b.port), timeout=PROMPT)
    try:
        s.sendall(small)
        assert s.recv(4096).startswith(b"HTTP/1.1 101 "), "a head under the limit was refused"
    finally:
        s.close()
    # ...over it is not: many header lines, one endless line, and a flood the
    # client keeps sending after the answer.
    for data in (upgrade_request(extra=[f"X-Pad-{i}: {'a' * 60}" for i in range(40)]),
                 b"GET /" + b"a" * 4000,
                 upgrade_request(extra=["X-Flood: " + "a" * (256 * 1024)])):
        r = http_exchange(b.port, data)
        assert r.status_line == STATUS_LINES[431], r
        assert connection_options(r) == {"close"}, r
    assert_still_serving(b)


# --- frames after the upgrade ------------------------------------------------

BIG_TEXT = "x" * 126
FRAME_CASES = [
    # (id, bytes sent after the upgrade, close code, reason substring)
    ("unmasked", frame(1, "hello", mask=False), 1002, "masked"),
    ("rsv1", with_first_byte(frame(1, "x"), 0x40), 1002, "reserved bits"),
    ("rsv2", with_first_byte(frame(1, "x"), 0x20), 1002, "reserved bits"),
    ("rsv3", with_first_byte(frame(1, "x"), 0x10), 1002, "reserved bits"),
    ("rsv1-on-ping", with_first_byte(frame(9, "x"), 0x40), 1002, "reserved bits"),
    *[(f"opcode-{op:#x}", frame(op, "x"), 1002, "unknown opcode") for op in
      (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF)],
    ("fragmented-ping", frame(9, "p", fin=False), 1002, "fragmented control"),
    ("fragmented-close", frame(8, close_payload(1000), fin=False), 1002, "fragmented control"),
    ("ping-126-bytes", frame(9, BIG_TEXT), 1002, "control frame too large"),
    ("pong-126-bytes", frame(10, BIG_TEXT), 1002, "control frame too large"),
    ("close-126-bytes", frame(8, close_payload(1000, b"r" * 124)), 1002, "control frame too large"),
    ("continuation-without-start", frame(0, "orphan"), 1002, "unexpected continuation"),
    ("text-while-fragmented", frame(1, "a", fin=False) + frame(1, "b"), 1002,
     "expected continuation"),
    ("binary-while-fragmented", frame(2, b"a", fin=False) + frame(2, b"b"), 1002,
     "expected continuation"),
    ("invalid-utf8", frame(1, b"ok \xff\xfe"), 1007, "UTF-8"),
    ("overlong-utf8", frame(1, b"\xc0\xaf"), 1007, "UTF-8"),
    ("utf16-surrogate", frame(1, b"\xed\xa0\x80"), 1007, "UTF-8"),
    ("invalid-utf8-across-fragments", frame(1, b"\xce", fin=False) + frame(0, b"\xff"), 1007,
     "UTF-8"),
    ("truncated-utf8-at-message-end",
     frame(1, b"a\xe2\x82", fin=False) + frame(0, b""), 1007, "UTF-8"),
    # Fails as soon as the bad byte arrives: neither the rest of the frame nor
    # the end of the message is waited for.
    ("invalid-utf8-mid-frame", frame(1, b"ok \xff" + b"a" * 200)[:8 + 4], 1007, "UTF-8"),
    ("invalid-utf8-in-open-fragment", frame(1, b"\xff", fin=False), 1007, "UTF-8"),
    ("invalid-utf8-close-reason", frame(8, close_payload(1000, b"\xff")), 1007, "UTF-8"),
    ("close-1-byte", frame(8, b"\x03"), 1002, "invalid close payload"),
    *[(f"close-code-{code}", frame(8, close_payload(code)), 1002, "invalid close payload")
      for code in (0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535)],
    # 64-bit length with its most significant bit set: refused from the header
    # alone, without waiting for a payload that could never come.
    ("length-msb-set", struct.pack("!BBQ", 0x82, 0xFF, 1 << 63) + b"\x11\x22\x33\x44", 1002,
     "frame length"),
    ("length-msb-set-before-mask-key", struct.pack("!BBQ", 0x82, 0xFF, 1 << 63), 1002,
     "frame length"),
    ("length-all-ones", struct.pack("!BBQ", 0x82, 0xFF, (1 << 64) - 1) + b"\x11\x22\x33\x44",
     1002, "frame length"),
]


@pytest.mark.parametrize("data, code, reason", [c[1:] for c in FRAME_CASES],
                         ids=[c[0] for c in FRAME_CASES])
def test_bad_frame_closes_with_code(broker, data, code, reason):
    b = broker(TRACKED)
    raw = raw_ws(b.port, "/bad-frame", timeout=PROMPT)
    try:
        raw.send(data)
        frames = frames_until_eof(raw)  # bounded by PROMPT: no waiting for more input
    finally:
        raw.close()
    assert frames and frames[-1][1] == 8, f"no Close frame last: {frames!r}"
    assert len(frames) == 1, f"frames before the Close: {frames!r}"
    got_code, got_reason = decode_close(frames[0][2])
    assert got_code == code, (got_code, got_reason)
    assert reason in got_reason, got_reason
    assert_on_disconnect_once(b, "bad-frame")
    assert b.count(r"script: message in bad-frame") == 0, "part of a bad message was delivered"


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 3000, 4999])
def test_valid_close_code_is_echoed(broker, code):
    b = broker(TRACKED)
    raw = raw_ws(b.port, "/close-ok", timeout=PROMPT)
    try:
        raw.send(frame(8, close_payload(code, "bye ✓".encode())))
        frames = frames_until_eof(raw)
    finally:
        raw.close()
    assert len(frames) == 1 and frames[0][1] == 8, frames
    assert decode_close(frames[0][2])[0] == code
    assert_on_disconnect_once(b, "close-ok")


def test_utf8_split_across_fragments_and_reads_is_accepted(broker):
    """The control for the UTF-8 cases: a valid character cut by a fragment
    or TCP boundary is not an error."""
    b = broker(TRACKED)
    raw = raw_ws(b.port, "/utf8", timeout=PROMPT)
    try:
        raw.send(frame(1, b"caf\xc3", fin=False) + frame(0, b"\xa9 \xe2\x9c", fin=False))
        whole = frame(0, b"\x93 ok")
        raw.send(whole[:7])  # header and one payload byte, then the rest
        time.sleep(0.05)
        raw.send(whole[7:])
        assert raw.read_frame() == (True, 1, "café ✓ ok".encode())
    finally:
        raw.close()
    assert_still_serving(b)


def test_message_over_limit_closes_1009(broker):
    b = broker(TRACKED, "--max-message-size", "1000")
    cases = [
        ("single", frame(2, b"a" * 1001)),
        ("fragments", frame(1, "a" * 600, fin=False) + frame(0, "a" * 401)),
        # Refused from the declared length: the payload is never sent.
        ("declared-16-bit", header_only(2, 1001)),
        ("declared-64-bit", header_only(2, 1 << 40)),
        ("declared-in-continuation", frame(2, b"a" * 999, fin=False) + header_only(0, 2)),
    ]
    for name, data in cases:
        raw = raw_ws(b.port, f"/big-{name}", timeout=PROMPT)
        try:
            # exactly the limit, in one frame or in fragments, is delivered
            raw.send(frame(2, b"c" * 1000))
            assert raw.read_frame() == (True, 2, b"c" * 1000)
            raw.send(frame(1, "b" * 500, fin=False) + frame(0, "b" * 500))
            assert raw.read_frame() == (True, 1, b"b" * 1000)
            raw.send(data)
            frames = frames_until_eof(raw)
        finally:
            raw.close()
        assert len(frames) == 1 and frames[0][1] == 8, (name, frames)
        assert decode_close(frames[0][2]) == (1009, "message too large"), name
        assert_on_disconnect_once(b, f"big-{name}")
        assert b.count(rf"script: message in big-{name} ") == 2, b.log_text()


# --- slow and silent peers -----------------------------------------------------


@pytest.mark.parametrize("how", ["one-byte-per-second", "request-line-then-nothing",
                                 "nothing-after-connect"])
def test_slow_head_is_dropped_at_handshake_timeout(broker, how):
    b = broker(TRACKED, "--handshake-timeout", "2")
    head = upgrade_request("GET /slow HTTP/1.1")
    s = socket.create_connection(("127.0.0.1", b.port), timeout=PROMPT)
    t0 = time.monotonic()
    sent = 0
    try:
        if how == "request-line-then-nothing":
            s.sendall(head[:head.index(b"\n") + 1])
            sent = head.index(b"\n") + 1
        while time.monotonic() - t0 < 20:
            if how == "one-byte-per-second" and sent < len(head):
                s.send(head[sent:sent + 1])
                sent += 1
            readable, _, _ = select.select([s], [], [], 1.0)
            if readable:
                break
        answered = time.monotonic() - t0
        got = read_to_eof(s)
    finally:
        s.close()
    # 2 s, plus up to 1 s for the once-a-second timer sweep, plus noise.
    assert 1.9 <= answered < 12, answered
    assert sent < len(head) // 2, f"{sent} of {len(head)} bytes sent: not dropped early"
    r = parse_response(got, answered)
    assert r.status_line == STATUS_LINES[408], r
    assert b.count(r"script: joined") == 0
    assert_still_serving(b)


def test_silent_client_is_pinged_then_closed_1001(broker):
    b = broker(TRACKED, "--idle-timeout", "2")
    raw = raw_ws(b.port, "/silent", timeout=20)
    t0 = time.monotonic()
    try:
        # Pinged at half the idle timeout (1 s, plus up to 1 s of timer sweep)...
        assert raw.read_frame() == (True, 9, b"")
        pinged = time.monotonic() - t0
        # ...and, having not answered, closed once the idle timeout has passed.
        fin, op, payload = raw.read_frame()
        closed = time.monotonic() - t0
        assert (fin, op) == (True, 8)
        assert decode_close(payload) == (1001, "idle timeout")
        assert 0.9 <= pinged < 10, pinged
        assert 1.9 <= closed < 15, closed
        assert closed > pinged
        b.wait_for_log(on_disconnect_pattern("silent"))
        raw.send(frame(8, close_payload(1001)))  # completes the close handshake
        assert frames_until_eof(raw) == []
    finally:
        raw.close()
    assert_on_disconnect_once(b, "silent")


def test_client_that_answers_pings_is_kept(broker):
    b = broker(TRACKED, "--idle-timeout", "2")

    async def body():
        # websockets answers the broker's pings by itself; this client sends nothing.
        async with connect(b.url("/patient")) as ws:
            await asyncio.sleep(5)  # 2.5 idle timeouts
            await ws.send("still here")
            assert await recv(ws) == "still here"
            assert b.count(on_disconnect_pattern("patient")) == 0, b.log_text()

    run(body())
    assert_on_disconnect_once(b, "patient")


# --- connections cut short -------------------------------------------------------

CUTS = {
    # (bytes sent after one echoed message, how the client goes away)
    "fin-between-frames": (b"", "fin"),
    "fin-mid-header": (frame(1, "hello")[:1], "fin"),
    "fin-mid-payload": (frame(1, "x" * 100)[:50], "fin"),
    "fin-mid-fragmented-message": (frame(1, "part", fin=False), "fin"),
    "close-between-frames": (b"", "close"),
    "reset-between-frames": (b"", "reset"),
    "reset-mid-payload": (frame(1, "x" * 100)[:50], "reset"),
    "reset-mid-fragmented-message": (frame(1, "part", fin=False), "reset"),
}


@pytest.mark.parametrize("name", list(CUTS))
def test_connection_cut_runs_on_disconnect_once(broker, name):
    partial, how = CUTS[name]
    b = broker(TRACKED)
    raw = raw_ws(b.port, f"/{name}", timeout=PROMPT)
    try:
        raw.send(frame(1, "hello"))
        assert raw.read_frame() == (True, 1, b"hello")  # fully established
        raw.send(partial)
        if how == "fin":
            # Half-close: the broker sees end of stream and closes its side.
            raw.sock.shutdown(socket.SHUT_WR)
            assert frames_until_eof(raw) == []
        elif how == "reset":
            raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        raw.close()  # "close": a plain close without a Close frame
    assert_on_disconnect_once(b, name)
    assert b.count(rf"script: message in {name} ") == 1, "a partial message was delivered"


def test_head_cut_short_is_dropped_without_handlers(broker):
    b = broker(TRACKED, "--handshake-timeout", "30")
    s = socket.create_connection(("127.0.0.1", b.port), timeout=PROMPT)
    try:
        s.sendall(upgrade_request("GET /cut HTTP/1.1")[:40])
        s.shutdown(socket.SHUT_WR)
        assert read_to_eof(s) == b""  # long before the 30 s handshake timeout
    finally:
        s.close()
    assert b.count(r"script: joined") == 0
    assert_still_serving(b)


# --- data after Close ----------------------------------------------------------------


@pytest.mark.parametrize("when", ["same-write", "after-the-answer"])
def test_data_after_close_is_ignored(broker, when):
    b = broker(TRACKED)
    room = f"after-close-{when}"
    raw = raw_ws(b.port, f"/{room}", timeout=PROMPT)
    junk = (frame(1, "after close") + frame(2, b"\x00" * 300) + frame(9, "ping?")
            + frame(1, "x", mask=False))  # even a protocol error gets no second Close
    try:
        raw.send(frame(1, "before"))
        assert raw.read_frame() == (True, 1, b"before")
        if when == "same-write":
            raw.send(frame(8, close_payload(1000, b"bye")) + junk)
            frames = frames_until_eof(raw)
        else:
            raw.send(frame(8, close_payload(1000, b"bye")))
            frames = frames_until_eof(raw)
            for _ in range(3):
                raw.send(junk)  # the broker has half-closed and discards what comes
    finally:
        raw.close()
    assert len(frames) == 1 and frames[0][1] == 8, frames
    assert decode_close(frames[0][2])[0] == 1000
    assert_on_disconnect_once(b, room)
    assert b.count(rf"script: message in {room} ") == 1, "data after the Close was delivered"

"""Fixtures for the end-to-end tests: each test starts the real luastrands
binary on a free port with its own Lua script, talks to it over WebSocket,
and stops it with SIGTERM (which must exit 0).

The binary comes from $LUASTRANDS_BIN, else <repo>/.build/debug/luastrands.
"""

import asyncio
import base64 as _b64
import os
import re
import signal
import socket as _socket
import struct as _struct
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"

START_TIMEOUT = 20.0  # seconds until the "listening on" line
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
RECV_TIMEOUT = 10.0  # default wait for one message
POLL_TIMEOUT = 20.0  # default bound of every "wait until" loop

LISTEN_RE = re.compile(r"listening on ws://127\.0\.0\.1:(\d+)")


def binary_path() -> Path:
    env = os.environ.get("LUASTRANDS_BIN")
    path = Path(env) if env else REPO / ".build" / "debug" / "luastrands"
    if not path.is_absolute():
        path = (REPO / path) if not path.exists() else path.resolve()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"luastrands binary not found or not executable at {path}; "
            "build it (swift build --product luastrands) or set LUASTRANDS_BIN",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def luastrands_bin() -> Path:
    return binary_path()


def run_cli(*args, timeout=30, env=None):
    """Runs `luastrands ARGS` to completion; returns the CompletedProcess."""
    return subprocess.run(
        [str(binary_path()), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


class Broker:
    """A running `luastrands serve`; .log holds its output lines so far."""

    def __init__(self, bin_path: Path, script: Path, args=(), env=None, defaults=True):
        self.script = script
        self.log: list[str] = []
        self._cond = threading.Condition()
        base = ["--port", "0", "--host", "127.0.0.1"] if defaults else []
        cmd = [str(bin_path), "serve", str(script), *base, *map(str, args)]
        self.cmd = cmd
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
        )
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True),
        ]
        for t in self._readers:
            t.start()
        self.port = None
        try:
            line = self.wait_for_log(LISTEN_RE, timeout=START_TIMEOUT)
        except AssertionError:
            self.kill()
            raise AssertionError(
                f"broker did not print 'listening on ws://127.0.0.1:PORT' within "
                f"{START_TIMEOUT}s (exit code {self.proc.poll()}); command: {cmd}\n"
                f"log:\n{self.log_text()}"
            ) from None
        self.port = int(LISTEN_RE.search(line).group(1))

    def _read(self, stream):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self.log.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    # --- log helpers -------------------------------------------------------

    def log_text(self) -> str:
        with self._cond:
            return "\n".join(self.log)

    def count(self, pattern) -> int:
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        with self._cond:
            return sum(1 for line in self.log if rx.search(line))

    def wait_for_log(self, pattern, timeout=POLL_TIMEOUT, start=0, count=1) -> str:
        """Waits until `count` lines from index `start` on match `pattern`;
        returns the last of them. Fails with the whole log otherwise."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [line for line in self.log[start:] if rx.search(line)]
                if len(hits) >= count:
                    return hits[count - 1]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None
                                      and not any(t.is_alive() for t in self._readers)):
                    raise AssertionError(
                        f"no log line matching {rx.pattern!r} (wanted {count}) within "
                        f"{timeout}s; exit code {self.proc.poll()}\nlog:\n"
                        + "\n".join(self.log))
                self._cond.wait(min(remaining, 0.2))

    # --- addresses ---------------------------------------------------------

    def url(self, path="/") -> str:
        if not path.startswith("/"):
            path = "/" + path
        return f"ws://127.0.0.1:{self.port}{path}"

    # --- lifecycle ---------------------------------------------------------

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
                for t in self._readers:
                    t.join(2)
                raise AssertionError(
                    f"broker ignored SIGTERM for {STOP_TIMEOUT}s and was killed\n"
                    f"log:\n{self.log_text()}")
        for t in self._readers:
            t.join(5)
        return self.proc.returncode


@pytest.fixture
def broker(tmp_path, luastrands_bin):
    """Factory: broker(lua_source_or_path, *extra_args, name=..., env=...).

    A string containing a newline (or not ending in .lua) is Lua source and
    is written to tmp_path/NAME (default script.lua); otherwise it is a path
    to an existing script. Every broker started is stopped at teardown, and
    its exit code must be 0."""
    started: list[Broker] = []

    def start(script, *args, name="script.lua", env=None) -> Broker:
        if isinstance(script, Path) or (isinstance(script, str) and "\n" not in script
                                        and script.endswith(".lua")):
            path = Path(script)
        else:
            path = tmp_path / name
            write_script(path, script)
        b = Broker(luastrands_bin, path, args, env)
        started.append(b)
        return b

    yield start

    failures = []
    for b in started:
        if b.proc.poll() is not None and b.proc.returncode != 0:
            failures.append(f"broker exited early with {b.proc.returncode}\n"
                            f"log:\n{b.log_text()}")
            continue
        try:
            rc = b.stop()
        except AssertionError as e:
            failures.append(str(e))
            continue
        if rc != 0:
            failures.append(f"broker exited with {rc} after SIGTERM (want 0)\n"
                            f"log:\n{b.log_text()}")
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


# --- helpers used by the tests ---------------------------------------------


def write_script(path: Path, source: str, atomic=True):
    """Writes Lua source: atomically (temp file + os.replace) or in place."""
    text = textwrap.dedent(source).lstrip("\n")
    if atomic:
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    else:
        with open(path, "w") as f:
            f.write(text)


def run(coro, timeout=90):
    """Runs an async test body with an overall bound."""
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


def connect(url, **kw):
    kw.setdefault("open_timeout", 20)
    kw.setdefault("close_timeout", 10)
    kw.setdefault("ping_interval", None)
    kw.setdefault("compression", None)  # exact frame sizes; no permessage-deflate
    return ws_connect(url, **kw)


async def recv(ws, timeout=RECV_TIMEOUT):
    return await asyncio.wait_for(ws.recv(), timeout)


async def recv_until(ws, predicate, timeout=RECV_TIMEOUT):
    """Receives until predicate(msg) holds; returns (msg, skipped messages)."""
    skipped = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no matching message within {timeout}s; got {skipped!r}")
        try:
            msg = await asyncio.wait_for(ws.recv(), remaining)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"no matching message within {timeout}s; got {skipped!r}") from None
        if predicate(msg):
            return msg, skipped
        skipped.append(msg)


async def expect_closed(ws, timeout=RECV_TIMEOUT):
    """Waits for the server to close; returns the received Close frame
    (None if the connection dropped without one) and the messages before it."""
    got = []
    try:
        while True:
            got.append(await asyncio.wait_for(ws.recv(), timeout))
    except websockets.exceptions.ConnectionClosed as e:
        return e.rcvd, got
    except asyncio.TimeoutError:
        raise AssertionError(f"connection still open after {timeout}s; got {got!r}") from None


# --- raw sockets, for what a well-behaved client library will not do -------

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's sample: base64 of 16 bytes


def upgrade_request(request_line="GET /h HTTP/1.1", *, host="127.0.0.1", key=KEY,
                    version="13", extra=()) -> bytes:
    """An upgrade request head; a field given as None is left out."""
    lines = [request_line]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += ["Upgrade: websocket", "Connection: Upgrade"]
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()



def raw_ws(port, path="/", timeout=20):
    """A WebSocket handshake on a plain socket; returns the socket after the
    101 response (any bytes after the head are kept in sock.leftover)."""
    s = _socket.create_connection(("127.0.0.1", port), timeout=timeout)
    key = _b64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, f"connection closed during handshake: {buf!r}"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return RawWS(s, rest)


def frame(opcode, payload=b"", fin=True, mask=True):
    """Encodes one frame (client frames are masked unless mask=False)."""
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head = _struct.pack("!BB", b0, m | n)
    elif n < 65536:
        head = _struct.pack("!BBH", b0, m | 126, n)
    else:
        head = _struct.pack("!BBQ", b0, m | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(p ^ key[i % 4] for i, p in enumerate(payload))


class RawWS:
    def __init__(self, sock, leftover=b""):
        self.sock = sock
        self.buf = leftover

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed; buffered {self.buf!r}")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self):
        """Returns (fin, opcode, payload) of the next server frame."""
        b0, b1 = self._need(2)
        assert not (b1 & 0x80), "server frames must not be masked"
        n = b1 & 0x7F
        if n == 126:
            (n,) = _struct.unpack("!H", self._need(2))
        elif n == 127:
            (n,) = _struct.unpack("!Q", self._need(8))
        return bool(b0 & 0x80), b0 & 0x0F, self._need(n)

    def read_close(self):
        """Reads frames until a Close; returns (code, reason) (None if none)."""
        while True:
            _, op, payload = self.read_frame()
            if op == 8:
                if len(payload) >= 2:
                    return _struct.unpack("!H", payload[:2])[0], payload[2:].decode()
                return None, ""

    def at_eof(self, timeout=20):
        """True once the server has closed the TCP connection."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True

    def close(self):
        self.sock.close()

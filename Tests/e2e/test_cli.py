"""The command line: check, --help, --version, SIGTERM/SIGINT."""

import signal
import subprocess

import pytest

from conftest import EXAMPLES, Broker, binary_path, connect, recv, run, run_cli, write_script


def test_help():
    r = run_cli("--help")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "serve" in out and "check" in out, out


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0, r.stderr
    assert (r.stdout + r.stderr).strip(), "empty --version output"


@pytest.mark.parametrize("script", ["echo.lua", "chat.lua"])
def test_check_examples(script):
    r = run_cli("check", EXAMPLES / script)
    assert r.returncode == 0, r.stderr


def test_check_good_script(tmp_path):
    path = tmp_path / "good.lua"
    write_script(path, """
    function on_message(message, context, is_binary) end
    """)
    r = run_cli("check", path)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("source,line,words", [
    ("-- one\nfunction on_message(m, c, b)\n  local x = = 1\nend\n", 3, "unexpected symbol"),
    ("-- one\n-- two\nerror('bad at load')\n", 3, "bad at load"),
    ("function f()\n", 1, "expected"),
])
def test_check_bad_script(tmp_path, source, line, words):
    path = tmp_path / "bad.lua"
    path.write_text(source)
    r = run_cli("check", path)
    assert r.returncode == 1, (r.returncode, r.stderr)
    if words != "expected":
        assert f"bad.lua:{line}:" in r.stderr, r.stderr
    else:
        assert "bad.lua:" in r.stderr, r.stderr
    assert words in r.stderr, r.stderr


def test_check_missing_file(tmp_path):
    r = run_cli("check", tmp_path / "nope.lua")
    assert r.returncode != 0
    assert "nope.lua" in r.stderr, r.stderr


def test_serve_refuses_broken_script(tmp_path):
    path = tmp_path / "broken.lua"
    path.write_text("x = = 1\n")
    r = subprocess.run([str(binary_path()), "serve", str(path), "--port", "0",
                        "--host", "127.0.0.1"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "broken.lua:1" in r.stderr, r.stderr


def test_sigint_exits_zero(tmp_path):
    path = tmp_path / "s.lua"
    write_script(path, "function on_message(m, c, b) end\n")
    b = Broker(binary_path(), path)
    try:
        async def body():
            async with connect(b.url("/")) as ws:
                b.signal(signal.SIGINT)
                await ws.wait_closed()
        run(body(), timeout=30)
        assert b.proc.wait(10) == 0, b.log_text()
    finally:
        b.kill()


def test_port_from_environment(tmp_path):
    path = tmp_path / "s.lua"
    write_script(path, "function on_message(m, c, b) strands.send_private_message(c.client_id, m) end\n")
    b = Broker(binary_path(), path, defaults=False,
               env={"LUASTRANDS_PORT": "0", "LUASTRANDS_HOST": "127.0.0.1",
                    "LUASTRANDS_LOG_LEVEL": "debug"})
    try:
        async def body():
            async with connect(b.url("/")) as ws:
                await ws.send("x")
                assert await recv(ws) == "x"
        run(body())
    finally:
        assert b.stop() == 0


@pytest.mark.parametrize("flag,value", [
    ("--max-connections", "0"),
    ("--max-connections", "many"),
    ("--idle-timeout", "inf"),
    ("--idle-timeout", "0"),
    ("--handshake-timeout", "nan"),
    ("--shutdown-timeout", "-1"),
    ("--max-send-queue", "16X"),
    ("--port", "70000"),
])
def test_bad_option_value_is_a_usage_error(flag, value):
    result = run_cli("serve", EXAMPLES / "echo.lua", flag, value, timeout=10)
    assert result.returncode == 2, result
    assert f'{flag}: expected' in result.stderr and f'"{value}"' in result.stderr, result.stderr
    assert "listening" not in result.stderr

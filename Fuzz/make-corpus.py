#!/usr/bin/env python3
"""Writes the seed corpora in Fuzz/corpus/ (run from anywhere; output is deterministic).

Every seed starts with the two control bytes the targets read first (see the
comments at the top of FuzzHTTPHead.swift and FuzzFrames.swift), then the bytes
a client would send.
"""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

UPGRADE = (
    b"GET /chat?token=abc HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\nSec-WebSocket-Version: 13\r\n\r\n"
)

HTTP = {
    # valid upgrades: whole, byte by byte, random pieces, two pieces, fixed pieces with empty feeds
    "rfc-upgrade": b"\x00\x00" + UPGRADE,
    "rfc-upgrade-bytewise": b"\x00\x07" + UPGRADE,
    "rfc-upgrade-random": b"\x08\x2a" + UPGRADE,
    "rfc-upgrade-halves": b"\x10\x40" + UPGRADE,
    "rfc-upgrade-chunks": b"\x38\x05" + UPGRADE,
    "bare-lf-leading-crlf": b"\x08\x01\r\n\nGET / HTTP/1.1\nUpgrade: WebSocket\nConnection: keep-alive, Upgrade\n"
    b"Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\nSec-WebSocket-Version: 13\n\n",
    "query-escapes": b"\x08\x03GET /r%2Fo?a=1&b=%E2%82%AC&c+d=e+f&&g&h=%zz&a=2 HTTP/1.1\r\nHost: h\r\n\r\n",
    "eager-frame": b"\x08\x09" + UPGRADE + b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
    # invalid ones
    "http10": b"\x00\x00GET / HTTP/1.0\r\nHost: h\r\n\r\n",
    "post": b"\x00\x00POST /x HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    "version-8": b"\x00\x00" + UPGRADE.replace(b"Version: 13", b"Version: 8"),
    "bad-key": b"\x00\x00" + UPGRADE.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"dGhlIHNhbXBsZQ=="),
    "two-keys": b"\x00\x00" + UPGRADE.replace(b"Origin:", b"Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\nOrigin:"),
    "obs-fold": b"\x00\x00GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
    "nul-in-value": b"\x00\x00GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
    "cr-only-line": b"\x00\x00GET / HTTP/1.1\r\nHost: h\r\n\r\r\n",
    "space-in-target": b"\x00\x00GET /a b HTTP/1.1\r\n\r\n",
    "too-large-64": b"\x04\x00" + UPGRADE,
    "no-end": b"\x02\x00GET / HTTP/1.1\r\nHost: h\r\n",
    "utf8-value": b"\x00\x00GET / HTTP/1.1\r\nUser-Agent: caf\xc3\xa9 \xff\r\n\r\n",
    # was refused: Swift joined "," and U+0301 into one Character (FuzzRegressionTests)
    "upgrade-comma-combining-mark": b"\x00\x00" + UPGRADE.replace(b"websocket", b"websocket,\xcc\x81"),
}

MASK = b"\x37\xfa\x21\x3d"


def frame(opcode, payload, fin=True, mask=MASK, rsv=0, masked=True):
    out = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        out += bytes([bit | n])
    elif n <= 0xFFFF:
        out += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        out += bytes([bit | 127]) + struct.pack(">Q", n)
    if not masked:
        return out + payload
    return out + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload))


def close(code, reason=b""):
    return frame(8, struct.pack(">H", code) + reason)


FRAMES = {
    # well-formed streams
    "hello": b"\x00\x00" + frame(1, b"Hello"),
    "hello-bytewise": b"\x00\x01" + frame(1, b"Hello"),
    "fragmented-with-ping": b"\x10\x11" + frame(1, b"Hel", fin=False) + frame(9, b"p") + frame(0, b"lo \xe2\x82", fin=False)
    + frame(10, b"") + frame(0, b"\xac"),
    "binary-16bit-length": b"\x20\x13" + frame(2, bytes(range(256)), mask=b"\x01\x02\x03\x04"),
    "close-1000-bye": b"\x10\x05" + close(1000, b"bye"),
    "close-empty": b"\x00\x00" + frame(8, b""),
    "mixed": b"\x50\x07" + frame(1, b"") + frame(2, b"\x00\xff", fin=False) + frame(0, b"\x01") + frame(9, b"x" * 125)
    + close(4999, b"\xf0\x9f\x98\x80"),
    # size limits: 1-byte limit; 64-bit length declared past 1 MiB
    "over-limit": b"\x02\x00" + frame(2, b"ab"),
    "declared-64bit": b"\x00\x00\x82\xff\x00\x00\x00\x00\x00\x20\x00\x00" + MASK + b"abc",
    # protocol errors
    "unmasked": b"\x00\x00" + frame(1, b"Hello", masked=False),
    "rsv1": b"\x00\x00" + frame(1, b"x", rsv=4),
    "opcode-3": b"\x00\x00" + frame(3, b""),
    "fragmented-ping": b"\x00\x00" + frame(9, b"", fin=False),
    "control-126": b"\x00\x00\x89\xfe\x00\x7e" + MASK,
    "continuation-first": b"\x00\x00" + frame(0, b"x"),
    "text-in-text": b"\x00\x00" + frame(1, b"a", fin=False) + frame(1, b"b"),
    "length-msb": b"\x00\x00\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00" + MASK,
    "bad-utf8-surrogate": b"\x30\x02" + frame(1, b"a\xed\xa0\x80b"),
    "bad-utf8-split-end": b"\x10\x09" + frame(1, b"\xe2\x82", fin=False) + frame(0, b"A"),
    "close-one-byte": b"\x00\x00" + frame(8, b"\x03"),
    "close-1005": b"\x00\x00" + close(1005),
    "close-bad-reason": b"\x00\x00" + close(1000, b"\xc0\xaf"),
    # recipe-shaped: kind bytes, lengths, fragment cuts (see plan() in FuzzFrames.swift)
    "recipe": b"\x00\x00\x4c\x20\x40\x80\x01\x10\x02\x05\x83\x30\xe0\x05\x09\x00",
}


def write(kind, seeds):
    directory = os.path.join(ROOT, kind)
    os.makedirs(directory, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)


write("http-head", HTTP)
write("frames", FRAMES)

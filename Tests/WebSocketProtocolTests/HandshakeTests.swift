import Testing
@testable import WebSocketProtocol

private let rfcKey = "dGhlIHNhbXBsZSBub25jZQ=="

private func head(method: String = "GET", version: HTTPVersion = .http1_1,
                  _ headers: [(String, String)]) -> HTTPRequestHead {
    HTTPRequestHead(method: method, target: "/chat", version: version,
                    headers: headers.map { (name: $0.0, value: $0.1) })
}

private let goodHeaders: [(String, String)] = [
    ("host", "server.example.com"), ("upgrade", "websocket"), ("connection", "Upgrade"),
    ("sec-websocket-key", rfcKey), ("sec-websocket-version", "13"),
]

private func replacing(_ name: String, with value: String?) -> [(String, String)] {
    var h = goodHeaders.filter { $0.0 != name }
    if let value { h.append((name, value)) }
    return h
}

@Suite struct HandshakeTests {
    @Test func rfc6455Section1_3Vector() {
        // RFC 6455 §1.3 gives SHA-1 b37a4f2c...c4ea, i.e. "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
        #expect(Handshake.acceptValue(forKey: rfcKey) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(Handshake.acceptValue(forKey: "x3JJHMbDL1EzLkh9GBhXDw==") == "HSmrc0sMlYUkAGmm5OPpG2HaGWk=")
    }

    @Test func validRequestReturnsKey() {
        #expect(Handshake.validate(head(goodHeaders)) == .success(rfcKey))
    }

    @Test func tokenListsAreCaseInsensitive() {
        var h = replacing("connection", with: "keep-alive, UPGRADE")
        h = h.filter { $0.0 != "upgrade" } + [("upgrade", "WebSocket")]
        #expect(Handshake.validate(head(h)) == .success(rfcKey))
        // Tokens may also be spread over repeated header lines.
        let repeated = goodHeaders.filter { $0.0 != "connection" } + [("connection", "keep-alive"), ("connection", "upgrade")]
        #expect(Handshake.validate(head(repeated)) == .success(rfcKey))
    }

    @Test(arguments: [
        ("missing key", head(replacing("sec-websocket-key", with: nil)), ProtocolError.missingOrInvalidKey, 400),
        ("key of 10 bytes", head(replacing("sec-websocket-key", with: "dGhlIHNhbXBsZQ==")), .missingOrInvalidKey, 400),
        ("key not base64", head(replacing("sec-websocket-key", with: "!!!!!!!!!!!!!!!!!!!!!!==")), .missingOrInvalidKey, 400),
        ("two keys", head(goodHeaders + [("sec-websocket-key", rfcKey)]), .missingOrInvalidKey, 400),
        ("version 8", head(replacing("sec-websocket-version", with: "8")), .unsupportedVersion, 426),
        ("no version", head(replacing("sec-websocket-version", with: nil)), .unsupportedVersion, 426),
        ("POST", head(method: "POST", goodHeaders), .methodNotAllowed, 405),
        ("HTTP/1.0", head(version: HTTPVersion(major: 1, minor: 0), goodHeaders), .unsupportedHTTPVersion, 505),
        ("HTTP/2.0", head(version: HTTPVersion(major: 2, minor: 0), goodHeaders), .unsupportedHTTPVersion, 505),
        ("HTTP/0.9", head(version: HTTPVersion(major: 0, minor: 9), goodHeaders), .unsupportedHTTPVersion, 505),
        ("no Upgrade", head(replacing("upgrade", with: nil)), .notAWebSocketUpgrade, 426),
        ("Upgrade: h2c", head(replacing("upgrade", with: "h2c")), .notAWebSocketUpgrade, 426),
        ("Connection: keep-alive", head(replacing("connection", with: "keep-alive")), .notAWebSocketUpgrade, 426),
        ("no Connection", head(replacing("connection", with: nil)), .notAWebSocketUpgrade, 426),
        ("no Host", head(replacing("host", with: nil)), .missingOrRepeatedHost, 400),
        ("two Hosts", head(goodHeaders + [("host", "other.example")]), .missingOrRepeatedHost, 400),
    ])
    func validationFailures(_ name: String, _ request: HTTPRequestHead, _ error: ProtocolError, _ status: Int) {
        #expect(Handshake.validate(request) == .failure(error), "\(name)")
        #expect(error.httpStatus == status, "\(name)")
        #expect(error.closeCode == 1002)
    }

    @Test func switchingProtocolsResponseBytes() {
        let response = String(decoding: Handshake.switchingProtocolsResponse(acceptValue: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), as: UTF8.self)
        #expect(response == "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
    }

    @Test func errorResponseToHEADHasTheHeadButNoContent() {
        let get = Handshake.errorResponse(for: .methodNotAllowed, method: "GET")
        let head = Handshake.errorResponse(for: .methodNotAllowed, method: "HEAD")
        let text = String(decoding: head, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n"))
        #expect(text.hasSuffix("\r\n\r\n"))
        #expect(text.contains("\r\nAllow: GET\r\n"))
        // The same head, Content-Length included, as the GET answer; only the content is left out.
        #expect(Array(get.prefix(head.count)) == head)
        #expect(get.count > head.count)
    }

    @Test func errorResponseIsCompleteAndCarriesVersionFor426() {
        let r426 = String(decoding: Handshake.errorResponse(status: 426), as: UTF8.self)
        #expect(r426.hasPrefix("HTTP/1.1 426 Upgrade Required\r\n"))
        #expect(r426.contains("\r\nSec-WebSocket-Version: 13\r\n"))
        #expect(r426.contains("\r\nUpgrade: websocket\r\n"))
        #expect(r426.contains("\r\nConnection: Upgrade, close\r\n"))
        #expect(r426.contains("\r\nContent-Type: text/plain"))

        let r400 = String(decoding: Handshake.errorResponse(status: 400, message: "nope"), as: UTF8.self)
        #expect(!r400.contains("Sec-WebSocket-Version"))
        let parts = r400.split(separator: "\r\n\r\n", maxSplits: 1, omittingEmptySubsequences: false)
        #expect(parts.count == 2)
        #expect(parts[1] == "nope\n")
        #expect(parts[0].contains("Content-Length: \(parts[1].utf8.count)"))

        let r405 = String(decoding: Handshake.errorResponse(for: .methodNotAllowed), as: UTF8.self)
        #expect(r405.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n"))
        #expect(r405.contains("\r\nAllow: GET\r\n"))
    }

    @Test func reasonPhrases() {
        #expect(Handshake.reasonPhrase(for: 431) == "Request Header Fields Too Large")
        #expect(Handshake.reasonPhrase(for: 505) == "HTTP Version Not Supported")
        #expect(Handshake.reasonPhrase(for: 400) == "Bad Request")
    }

    @Test func base64RoundTrip() {
        var rng = SplitMix64(seed: 7)
        for n in 0..<40 {
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
        #expect(Base64.encode(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(Base64.encode(Array("fo".utf8)) == "Zm8=")
        #expect(Base64.decode("Zm9=v") == nil)
        #expect(Base64.decode("Zm=9") == nil)
    }
}

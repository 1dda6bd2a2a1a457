import CCrypto

/// The server side of the opening handshake (RFC 6455 §4.2).
public enum Handshake {
    /// The GUID every accept value is derived from (RFC 6455 §1.3).
    static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// Checks a request head is an acceptable upgrade and returns its `Sec-WebSocket-Key`.
    ///
    /// The version is checked before the key so a client speaking another draft
    /// gets 426 (and can retry with 13) rather than a bare 400.
    public static func validate(_ head: HTTPRequestHead) -> Result<String, ProtocolError> {
        // "HTTP/2.0" in a request line is no HTTP/2 client (that one sends no such line), and
        // 505 is the answer for a major version we do not speak (RFC 9110 §15.6.6).
        guard head.version.major == 1, head.version >= .http1_1 else { return .failure(.unsupportedHTTPVersion) }
        guard head.method == "GET" else { return .failure(.methodNotAllowed) }
        // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without exactly one Host.
        guard head.values(for: "host").count == 1 else { return .failure(.missingOrRepeatedHost) }
        guard hasToken("websocket", in: head.values(for: "upgrade")),
              hasToken("upgrade", in: head.values(for: "connection")) else {
            return .failure(.notAWebSocketUpgrade)
        }
        let versions = head.values(for: "sec-websocket-version")
        guard versions.count == 1, versions[0] == "13" else { return .failure(.unsupportedVersion) }
        let keys = head.values(for: "sec-websocket-key")
        guard keys.count == 1, let decoded = Base64.decode(keys[0]), decoded.count == 16 else {
            return .failure(.missingOrInvalidKey)
        }
        return .success(keys[0])
    }

    /// True if any comma-separated element of any of `values` equals `token`, ignoring ASCII case.
    static func hasToken(_ token: String, in values: [String]) -> Bool {
        values.contains { value in
            // Split on the comma byte, not on Characters: HTTP lists are byte strings, and a comma
            // followed by a combining mark (say U+0301) is one Character to Swift, which hid the
            // separator and rejected "Upgrade: websocket,\u{301}" (caught by the byte-level reference check in
            // Fuzz/FuzzHTTPHead.swift).
            value.utf8.split(separator: UInt8(ascii: ",")).contains { element in
                ASCII.equalsIgnoringCase(Substring(element).trimmingSpacesAndTabs(), token)
            }
        }
    }

    /// base64(SHA1(key + GUID)); proves to the client the server understood the handshake.
    /// RFC 6455 §1.3: "dGhlIHNhbXBsZSBub25jZQ==" gives "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
    public static func acceptValue(forKey key: String) -> String {
        var input = Array(key.utf8)
        input.append(contentsOf: guid.utf8)
        var digest = [UInt8](repeating: 0, count: Int(SHA_DIGEST_LENGTH))
        input.withUnsafeBufferPointer { inp in
            digest.withUnsafeMutableBufferPointer { out in
                _ = SHA1(inp.baseAddress, inp.count, out.baseAddress)
            }
        }
        return Base64.encode(digest)
    }

    /// The complete 101 response. `subprotocol`, when given, must be one the client offered.
    public static func switchingProtocolsResponse(acceptValue: String, subprotocol: String? = nil) -> [UInt8] {
        var text = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(acceptValue)\r\n"
        if let subprotocol { text += "Sec-WebSocket-Protocol: \(subprotocol)\r\n" }
        text += "\r\n"
        return Array(text.utf8)
    }

    /// A complete response that rejects the upgrade, after which the caller closes the connection.
    ///
    /// 426 carries `Upgrade: websocket` and `Sec-WebSocket-Version: 13` (RFC 6455 §4.4) and 405 carries `Allow: GET`
    /// (RFC 9110 §15.5.6) because both are mandatory for those statuses. `withBody: false` is for
    /// a HEAD request, whose response has the same head but no content (RFC 9110 §9.3.2).
    public static func errorResponse(status: Int, message: String? = nil, withBody: Bool = true) -> [UInt8] {
        let body = Array(((message ?? reasonPhrase(for: status)) + "\n").utf8)
        var text = "HTTP/1.1 \(status) \(reasonPhrase(for: status))\r\n"
        text += "Content-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.count)\r\n"
        // A 426 must name the protocol to upgrade to, and a sender of Upgrade must list it
        // in Connection (RFC 9110 §15.5.22, §7.8).
        text += status == 426 ? "Connection: Upgrade, close\r\nUpgrade: websocket\r\n" : "Connection: close\r\n"
        if status == 426 { text += "Sec-WebSocket-Version: 13\r\n" }
        if status == 405 { text += "Allow: GET\r\n" }
        // A full broker is a passing state: tell clients when to come back.
        if status == 503 { text += "Retry-After: 1\r\n" }
        text += "\r\n"
        return withBody ? Array(text.utf8) + body : Array(text.utf8)
    }

    /// The error response for a handshake failure, with the error's own reason as body
    /// (none when answering `method` HEAD).
    public static func errorResponse(for error: ProtocolError, method: String = "GET") -> [UInt8] {
        errorResponse(status: error.httpStatus, message: error.reason, withBody: method != "HEAD")
    }

    /// Standard reason phrases for the statuses this broker can produce.
    public static func reasonPhrase(for status: Int) -> String {
        switch status {
        case 101: return "Switching Protocols"
        case 200: return "OK"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 413: return "Content Too Large"
        case 426: return "Upgrade Required"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 503: return "Service Unavailable"
        case 505: return "HTTP Version Not Supported"
        default: return "Error"
        }
    }
}

extension Substring {
    /// HTTP's optional whitespace is only SP and HTAB, unlike Unicode whitespace.
    func trimmingSpacesAndTabs() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}

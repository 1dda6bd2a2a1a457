/// The HTTP version from a request line; kept numeric so "1.1 or later" is a comparison.
public struct HTTPVersion: Equatable, Comparable, Sendable {
    public var major: Int
    public var minor: Int

    /// Creates a version such as 1.1.
    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// HTTP/1.1, the minimum a WebSocket upgrade accepts.
    public static let http1_1 = HTTPVersion(major: 1, minor: 1)

    /// Orders by major then minor version.
    public static func < (lhs: HTTPVersion, rhs: HTTPVersion) -> Bool {
        (lhs.major, lhs.minor) < (rhs.major, rhs.minor)
    }
}

/// A parsed HTTP/1.x request head (request line plus header fields).
public struct HTTPRequestHead: Equatable, Sendable {
    public var method: String
    /// The request target exactly as sent, e.g. "/chat?token=abc".
    public var target: String
    public var version: HTTPVersion
    /// Names lower-cased (HTTP names are case-insensitive), values trimmed, in arrival
    /// order; a list rather than a dictionary because repeats are meaningful.
    public var headers: [(name: String, value: String)]

    /// Creates a head; mostly useful for tests and for synthesising requests.
    public init(method: String, target: String, version: HTTPVersion = .http1_1,
                headers: [(name: String, value: String)] = []) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
    }

    /// All values of a header, in arrival order. The name must already be lower-case.
    public func values(for lowercasedName: String) -> [String] {
        headers.compactMap { $0.name == lowercasedName ? $0.value : nil }
    }

    /// The first value of a header, or nil. The name must already be lower-case.
    public func firstValue(for lowercasedName: String) -> String? {
        headers.first { $0.name == lowercasedName }?.value
    }

    /// Written by hand because tuples are not Equatable.
    public static func == (lhs: HTTPRequestHead, rhs: HTTPRequestHead) -> Bool {
        lhs.method == rhs.method && lhs.target == rhs.target && lhs.version == rhs.version
            && lhs.headers.count == rhs.headers.count
            && zip(lhs.headers, rhs.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}

/// The outcome of feeding bytes to an `HTTPHeadParser`.
public enum HeadParseResult: Equatable, Sendable {
    case needMoreData
    /// `consumed` counts only bytes of the latest `feed` call that belonged to the head.
    case complete(HTTPRequestHead, consumed: Int)
    case failed(ProtocolError)
}

/// Incremental HTTP/1.1 request head parser.
///
/// Lines end in CRLF; a bare LF is tolerated because real clients and test tools
/// send it. Bytes are only copied until the blank line is seen, and never more
/// than `maxHeadSize`, so a slow or hostile client cannot grow memory.
/// The parser is single-use: after `.complete` or `.failed` it repeats that answer.
public struct HTTPHeadParser: Sendable {
    private enum State: Sendable {
        case parsing
        case done(HTTPRequestHead)
        case failed(ProtocolError)
    }

    private let maxHeadSize: Int
    private var buffer: [UInt8] = []
    private var state: State = .parsing
    /// Whether the current line has any byte besides CR; an LF ending a line without one ends the head.
    private var lineHasContent = false
    /// Leading empty lines are skipped (RFC 9112 §2.2 robustness), so the first content byte matters.
    private var started = false
    /// Bytes seen so far, including skipped leading line breaks, for the size bound.
    private var seen = 0
    /// The request line has ended and was valid.
    private var requestLineDone = false

    /// Creates a parser that rejects heads longer than `maxHeadSize` bytes (terminator included).
    public init(maxHeadSize: Int = 16 * 1024) {
        self.maxHeadSize = maxHeadSize
    }

    /// Feeds the next bytes. On `.complete`, bytes after `consumed` were sent after the head
    /// (eager frames) and must go to the `WebSocketReader`.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> HeadParseResult {
        switch state {
        case .done(let head): return .complete(head, consumed: 0)
        case .failed(let error): return .failed(error)
        case .parsing: break
        }
        var start = 0
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if !started {
                if b == ASCII.cr || b == ASCII.lf {
                    i += 1
                    start = i
                    continue
                }
                started = true
            }
            // The request line is judged as soon as it ends, and a byte no request line can hold
            // fails at once: binary garbage or a TLS hello gets its 400 now, rather than holding
            // the socket until the head limit or the handshake timeout (and then a 408). The
            // verdict depends only on the byte's position, never on how input was split.
            if !requestLineDone && (b == ASCII.lf || ((b < 0x20 || b > 0x7E) && b != ASCII.cr)) {
                var line = buffer
                line.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
                if line.last == ASCII.cr { line.removeLast() }
                if b != ASCII.lf || Self.parseRequestLine(line[...]) == nil {
                    return fail(seen + i + 1 > maxHeadSize ? .headTooLarge : .malformedRequestLine)
                }
                requestLineDone = true
            }
            if b == ASCII.lf {
                if !lineHasContent {
                    let total = seen + (i + 1)
                    if total > maxHeadSize { return fail(.headTooLarge) }
                    buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<(i + 1)]))
                    let result = Self.parse(buffer)
                    buffer = []
                    switch result {
                    case .success(let head):
                        state = .done(head)
                        return .complete(head, consumed: i + 1)
                    case .failure(let error):
                        return fail(error)
                    }
                }
                lineHasContent = false
            } else if b != ASCII.cr {
                lineHasContent = true
            }
            i += 1
        }
        seen += bytes.count
        if seen > maxHeadSize { return fail(.headTooLarge) }
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start...]))
        return .needMoreData
    }

    private mutating func fail(_ error: ProtocolError) -> HeadParseResult {
        buffer = []
        state = .failed(error)
        return .failed(error)
    }

    /// Parses a complete head (request line, headers, blank line), without leading empty lines.
    static func parse(_ bytes: [UInt8]) -> Result<HTTPRequestHead, ProtocolError> {
        var lines: [ArraySlice<UInt8>] = []
        var lineStart = 0
        for (i, b) in bytes.enumerated() where b == ASCII.lf {
            var end = i
            if end > lineStart && bytes[end - 1] == ASCII.cr { end -= 1 }
            lines.append(bytes[lineStart..<end])
            lineStart = i + 1
        }
        guard let requestLine = lines.first else { return .failure(.malformedRequestLine) }
        guard let (method, target, version) = parseRequestLine(requestLine) else {
            return .failure(.malformedRequestLine)
        }
        var headers: [(name: String, value: String)] = []
        for line in lines.dropFirst() where !line.isEmpty {
            guard let field = parseHeaderLine(line) else { return .failure(.malformedHeader) }
            headers.append(field)
        }
        return .success(HTTPRequestHead(method: method, target: target, version: version, headers: headers))
    }

    private static func parseRequestLine(_ line: ArraySlice<UInt8>) -> (String, String, HTTPVersion)? {
        let parts = line.split(separator: ASCII.space, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        let method = parts[0], target = parts[1], version = parts[2]
        guard !method.isEmpty, method.allSatisfy(ASCII.isTokenChar) else { return nil }
        // Visible ASCII only: anything else in a target is either an attack or a broken client.
        guard !target.isEmpty, target.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        guard let parsedVersion = parseVersion(version) else { return nil }
        return (String(decoding: method, as: UTF8.self), String(decoding: target, as: UTF8.self), parsedVersion)
    }

    /// Accepts exactly "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3).
    private static func parseVersion(_ v: ArraySlice<UInt8>) -> HTTPVersion? {
        let b = Array(v)
        guard b.count == 8, b[0] == 0x48, b[1] == 0x54, b[2] == 0x54, b[3] == 0x50, b[4] == 0x2F,
              ASCII.isDigit(b[5]), b[6] == 0x2E, ASCII.isDigit(b[7]) else { return nil }
        return HTTPVersion(major: Int(b[5] - 0x30), minor: Int(b[7] - 0x30))
    }

    private static func parseHeaderLine(_ line: ArraySlice<UInt8>) -> (name: String, value: String)? {
        // Leading whitespace means obsolete line folding, which RFC 9112 §5.2 lets us reject.
        guard let colon = line.firstIndex(of: ASCII.colon), colon > line.startIndex else { return nil }
        let name = line[line.startIndex..<colon]
        guard name.allSatisfy(ASCII.isTokenChar) else { return nil }
        var value = line[(colon + 1)...]
        while let f = value.first, f == ASCII.space || f == ASCII.tab { value = value.dropFirst() }
        while let l = value.last, l == ASCII.space || l == ASCII.tab { value = value.dropLast() }
        // CTLs other than HTAB (notably a stray CR or NUL) enable header-smuggling tricks.
        guard value.allSatisfy({ ($0 >= 0x20 && $0 != 0x7F) || $0 == ASCII.tab }) else { return nil }
        let lowerName = String(decoding: name.map(ASCII.lowercased), as: UTF8.self)
        return (lowerName, String(decoding: value, as: UTF8.self))
    }
}

/// Byte constants and predicates for the ASCII-only parts of HTTP.
enum ASCII {
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09
    static let colon: UInt8 = 0x3A

    static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

    static func lowercased(_ b: UInt8) -> UInt8 { (b >= 0x41 && b <= 0x5A) ? b | 0x20 : b }

    /// RFC 9110 §5.6.2 tchar.
    static func isTokenChar(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default: return false
        }
    }

    /// Case-insensitive comparison for ASCII tokens without allocating lower-cased copies.
    static func equalsIgnoringCase(_ a: Substring, _ b: String) -> Bool {
        let au = a.utf8, bu = b.utf8
        guard au.count == bu.count else { return false }
        return zip(au, bu).allSatisfy { lowercased($0) == lowercased($1) }
    }
}

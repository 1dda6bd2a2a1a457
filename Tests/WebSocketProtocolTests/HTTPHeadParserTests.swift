import Testing
@testable import WebSocketProtocol

private let rfcRequest = "GET /chat?token=abc HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Version: 13\r\n\r\n"

/// Feeds pieces ending at `cuts`; returns the final result and the absolute offset where the head ended.
private func parse(_ bytes: [UInt8], cuts: [Int] = [], maxHeadSize: Int = 16 * 1024) -> (HeadParseResult, Int?) {
    var parser = HTTPHeadParser(maxHeadSize: maxHeadSize)
    var start = 0
    var last = HeadParseResult.needMoreData
    for end in cuts + [bytes.count] where end >= start {
        let piece = Array(bytes[start..<end])
        last = piece.withUnsafeBytes { parser.feed($0) }
        switch last {
        case .complete(_, let consumed): return (last, start + consumed)
        case .failed: return (last, nil)
        case .needMoreData: start = end
        }
    }
    return (last, nil)
}

private func head(of result: HeadParseResult) -> HTTPRequestHead? {
    if case .complete(let h, _) = result { return h }
    return nil
}

@Suite struct HTTPHeadParserTests {
    @Test func parsesRFCRequest() throws {
        let (result, end) = parse(bytesOf(rfcRequest))
        let h = try #require(head(of: result))
        #expect(h.method == "GET")
        #expect(h.target == "/chat?token=abc")
        #expect(h.version == .http1_1)
        #expect(h.headers.map(\.name) == ["host", "upgrade", "connection", "sec-websocket-key", "origin", "sec-websocket-version"])
        #expect(h.firstValue(for: "sec-websocket-key") == "dGhlIHNhbXBsZSBub25jZQ==")
        #expect(end == rfcRequest.utf8.count)
        #expect(Handshake.validate(h) == .success("dGhlIHNhbXBsZSBub25jZQ=="))
    }

    @Test func splitsGiveIdenticalResults() {
        // Eager frame bytes after the head must be left for the reader.
        let frame: [UInt8] = [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        for input in [bytesOf(rfcRequest), bytesOf(rfcRequest) + frame, bytesOf(rfcRequest.replacingCRLF())] {
            let (reference, referenceEnd) = parse(input)
            #expect(head(of: reference) != nil)
            for cuts in splitPatterns(length: input.count, random: 300, seed: 99) {
                let (result, end) = parse(input, cuts: cuts)
                #expect(head(of: result) == head(of: reference), "cuts \(cuts)")
                #expect(end == referenceEnd, "cuts \(cuts)")
            }
        }
    }

    @Test func reportsConsumedBytesOfTheLastFeed() {
        var parser = HTTPHeadParser()
        let bytes = bytesOf(rfcRequest) + [1, 2, 3]
        let first = Array(bytes[..<10]), second = Array(bytes[10...])
        #expect(first.withUnsafeBytes { parser.feed($0) } == .needMoreData)
        let result = second.withUnsafeBytes { parser.feed($0) }
        guard case .complete(_, let consumed) = result else {
            Issue.record("expected complete, got \(result)")
            return
        }
        #expect(consumed == second.count - 3)
    }

    @Test func bareLineFeedsAreTolerated() throws {
        let h = try #require(head(of: parse(bytesOf(rfcRequest.replacingCRLF())).0))
        #expect(h.headers.count == 6)
        #expect(h.firstValue(for: "upgrade") == "websocket")
    }

    @Test func repeatedAndCaseInsensitiveHeaders() throws {
        let raw = "GET / HTTP/1.1\r\nX-Thing: a\r\nUPGRADE:websocket\r\nx-thing:   b  \r\nX-THING: c\r\n\r\n"
        let h = try #require(head(of: parse(bytesOf(raw)).0))
        #expect(h.values(for: "x-thing") == ["a", "b", "c"])
        #expect(h.firstValue(for: "x-thing") == "a")
        #expect(h.firstValue(for: "upgrade") == "websocket")
        #expect(h.firstValue(for: "missing") == nil)
        #expect(h.values(for: "missing") == [])
    }

    @Test func leadingEmptyLinesAreSkipped() throws {
        let (result, end) = parse(bytesOf("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        let h = try #require(head(of: result))
        #expect(h.target == "/")
        #expect(end == 4 + 27)
    }

    @Test func headTooLarge() {
        let big = "GET / HTTP/1.1\r\nX-Filler: " + String(repeating: "a", count: 200) + "\r\n\r\n"
        for cuts in splitPatterns(length: big.utf8.count, random: 20) {
            #expect(parse(bytesOf(big), cuts: cuts, maxHeadSize: 100).0 == .failed(.headTooLarge))
        }
        // A client that never sends the blank line is cut off once it passes the limit.
        var parser = HTTPHeadParser(maxHeadSize: 100)
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 60)
        #expect(chunk.withUnsafeBytes { parser.feed($0) } == .needMoreData)
        #expect(chunk.withUnsafeBytes { parser.feed($0) } == .failed(.headTooLarge))
        #expect(chunk.withUnsafeBytes { parser.feed($0) } == .failed(.headTooLarge))
        // Exactly at the limit is fine.
        let exact = "GET / HTTP/1.1\r\n\r\n"
        #expect(head(of: parse(bytesOf(exact), maxHeadSize: exact.utf8.count).0) != nil)
        #expect(parse(bytesOf(exact), maxHeadSize: exact.utf8.count - 1).0 == .failed(.headTooLarge))
    }

    @Test(arguments: [
        ("GET /\r\n\r\n", ProtocolError.malformedRequestLine),
        ("GET  / HTTP/1.1\r\n\r\n", .malformedRequestLine),
        ("GET / HTTP/1.1 x\r\n\r\n", .malformedRequestLine),
        ("GET / HTTX/1.1\r\n\r\n", .malformedRequestLine),
        ("GET / HTTP/11\r\n\r\n", .malformedRequestLine),
        ("G(T / HTTP/1.1\r\n\r\n", .malformedRequestLine),
        ("GET /a\u{1}b HTTP/1.1\r\n\r\n", .malformedRequestLine),
        ("GET / HTTP/1.1\r\nNoColon\r\n\r\n", .malformedHeader),
        ("GET / HTTP/1.1\r\nName : v\r\n\r\n", .malformedHeader),
        ("GET / HTTP/1.1\r\n: v\r\n\r\n", .malformedHeader),
        ("GET / HTTP/1.1\r\nA: b\r\n  folded\r\n\r\n", .malformedHeader),
        ("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", .malformedHeader),
    ])
    func malformed(_ raw: String, _ error: ProtocolError) {
        #expect(parse(bytesOf(raw)).0 == .failed(error), "\(raw.debugDescription)")
    }

    @Test func badRequestLineFailsBeforeTheHeadEnds() {
        // A byte no request line holds fails at once, with no line break in sight (a TLS hello).
        var tls = HTTPHeadParser()
        let hello: [UInt8] = [0x16, 0x03, 0x01, 0x00, 0xC4]
        #expect(hello.withUnsafeBytes { tls.feed($0) } == .failed(.malformedRequestLine))
        // A malformed line fails at its line break, before any blank line.
        var garbage = HTTPHeadParser()
        #expect(bytesOf("hello there\r\n").withUnsafeBytes { garbage.feed($0) } == .failed(.malformedRequestLine))
        // A good line waits for the rest of the head.
        var good = HTTPHeadParser()
        #expect(bytesOf("GET / HTTP/1.1\r\nHost: x\r\n").withUnsafeBytes { good.feed($0) } == .needMoreData)
    }

    @Test(arguments: [
        ("GET /a\u{1}b HTTP/1.1\r\n", 16 * 1024, ProtocolError.malformedRequestLine),
        ("\r\nnot http\n", 16 * 1024, .malformedRequestLine),
        ("GET /\u{80} HTTP/1.1", 16 * 1024, .malformedRequestLine),
        ("GET / HTTP/1.1\r\nX: \u{1}\r\n\r\n", 16 * 1024, .malformedHeader),
        // Past the limit, the size is what counts, wherever the bad byte is.
        ("GET /" + String(repeating: "a", count: 300) + "\u{1}", 256, .headTooLarge),
        ("GET /" + String(repeating: "a", count: 300) + " HTTP/1.1 x\r\n", 256, .headTooLarge),
    ])
    func failureVerdictDoesNotDependOnSplits(_ raw: String, _ maxHeadSize: Int, _ error: ProtocolError) {
        let bytes = bytesOf(raw)
        for cuts in splitPatterns(length: bytes.count, random: 100) {
            #expect(parse(bytes, cuts: cuts, maxHeadSize: maxHeadSize).0 == .failed(error), "cuts \(cuts)")
        }
    }

    @Test func parsesOtherVersionsForTheHandshakeToJudge() throws {
        let h = try #require(head(of: parse(bytesOf("GET / HTTP/1.0\r\n\r\n")).0))
        #expect(h.version == HTTPVersion(major: 1, minor: 0))
        #expect(Handshake.validate(h) == .failure(.unsupportedHTTPVersion))
    }

    @Test func completedParserRepeatsItsAnswer() {
        var parser = HTTPHeadParser()
        let bytes = bytesOf("GET / HTTP/1.1\r\n\r\n")
        let first = bytes.withUnsafeBytes { parser.feed($0) }
        let again = bytes.withUnsafeBytes { parser.feed($0) }
        guard case .complete(let h, let n) = first, case .complete(let h2, let n2) = again else {
            Issue.record("expected complete twice")
            return
        }
        #expect(h == h2)
        #expect(n == bytes.count)
        #expect(n2 == 0)
    }
}

extension String {
    func replacingCRLF() -> String {
        String(decoding: Array(utf8).filter { $0 != 0x0D }, as: UTF8.self)
    }
}

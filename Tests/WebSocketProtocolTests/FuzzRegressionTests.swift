import Testing
@testable import WebSocketProtocol

// Inputs that broke an invariant of the fuzz targets in Fuzz/ (kept byte for byte, minus the
// two control bytes the targets read first), and a deterministic, seeded version of those
// invariants so `swift test` checks them without libFuzzer.

/// "Upgrade: websocket,\u{301}": a comma followed by a combining mark. Swift sees ",\u{301}" as
/// one Character, so the list was not split there and the upgrade was refused (400).
/// Fuzz input: 00 00 followed by these bytes.
private let upgradeCommaCombiningMark: [UInt8] = [
    0x47, 0x45, 0x54, 0x20, 0x2F, 0x20, 0x48, 0x54, 0x54, 0x50, 0x2F, 0x31, 0x2E, 0x31, 0x0D, 0x0A,
    0x55, 0x70, 0x67, 0x72, 0x61, 0x64, 0x65, 0x3A, 0x20, 0x77, 0x65, 0x62, 0x73, 0x6F, 0x63, 0x6B,
    0x65, 0x74, 0x2C, 0xCC, 0x81, 0x0D, 0x0A, 0x43, 0x6F, 0x6E, 0x6E, 0x65, 0x63, 0x74, 0x69, 0x6F,
    0x6E, 0x3A, 0x20, 0x55, 0x70, 0x67, 0x72, 0x61, 0x64, 0x65, 0x0D, 0x0A, 0x53, 0x65, 0x63, 0x2D,
    0x57, 0x65, 0x62, 0x53, 0x6F, 0x63, 0x6B, 0x65, 0x74, 0x2D, 0x4B, 0x65, 0x79, 0x3A, 0x20, 0x64,
    0x47, 0x68, 0x6C, 0x49, 0x48, 0x4E, 0x68, 0x62, 0x58, 0x42, 0x73, 0x5A, 0x53, 0x42, 0x75, 0x62,
    0x32, 0x35, 0x6A, 0x5A, 0x51, 0x3D, 0x3D, 0x0D, 0x0A, 0x53, 0x65, 0x63, 0x2D, 0x57, 0x65, 0x62,
    0x53, 0x6F, 0x63, 0x6B, 0x65, 0x74, 0x2D, 0x56, 0x65, 0x72, 0x73, 0x69, 0x6F, 0x6E, 0x3A, 0x20,
    0x31, 0x33, 0x0D, 0x0A,
    // "Host: h", since a request without one is refused before the Upgrade header is looked at.
    0x48, 0x6F, 0x73, 0x74, 0x3A, 0x20, 0x68, 0x0D, 0x0A,
    0x0D, 0x0A,
]

/// Feeds pieces ending at `cuts` to one parser. Returns the answer and, for a head, the absolute
/// offset where it ended; checks the per-call contract on the way.
private func feedHead(_ bytes: [UInt8], cuts: [Int] = [], maxHeadSize: Int = 16 * 1024,
                      sourceLocation: SourceLocation = #_sourceLocation) -> (HeadParseResult, end: Int?) {
    var parser = HTTPHeadParser(maxHeadSize: maxHeadSize)
    var start = 0
    for end in cuts + [bytes.count] where end >= start {
        let piece = Array(bytes[start..<end])
        let result = piece.withUnsafeBytes { parser.feed($0) }
        switch result {
        case .needMoreData:
            start = end
        case .complete(let head, let consumed):
            #expect(consumed >= 1 && consumed <= piece.count && piece[consumed - 1] == 0x0A, sourceLocation: sourceLocation)
            #expect([UInt8]().withUnsafeBytes { parser.feed($0) } == .complete(head, consumed: 0), sourceLocation: sourceLocation)
            return (.complete(head, consumed: start + consumed), start + consumed)
        case .failed(let error):
            #expect(piece.withUnsafeBytes { parser.feed($0) } == .failed(error), sourceLocation: sourceLocation)
            return (result, nil)
        }
    }
    return (.needMoreData, nil)
}

/// Like `runReader`, but keeps feeding after a failure and checks the reader stays inert.
private func runToEnd(_ bytes: [UInt8], cuts: [Int], maxMessageSize: Int,
                      sourceLocation: SourceLocation = #_sourceLocation) -> ReaderRun {
    var reader = WebSocketReader(maxMessageSize: maxMessageSize)
    var events: [Event] = []
    var result = ReaderResult.ok
    var start = 0
    for end in cuts + [bytes.count] + [bytes.count + 1] where end >= start {
        // The extra last piece is a valid empty text frame, fed to a reader that must be done or failed.
        var piece = end <= bytes.count ? Array(bytes[start..<end]) : (result == .ok ? [] : clientFrame(.text, []))
        start = end
        let before = events.count
        let r = piece.withUnsafeMutableBytes { reader.receive($0) { events.append(Event($0)) } }
        if result != .ok {
            #expect(r == result && events.count == before, "events or a new answer after \(result)", sourceLocation: sourceLocation)
        }
        result = r
    }
    return ReaderRun(events: events, result: result, pending: reader.hasPendingData)
}

private func randomCuts(_ n: Int, _ rng: inout SplitMix64) -> [Int] {
    guard n > 1 else { return [] }
    return (0..<Int.random(in: 1...min(n - 1, 16), using: &rng)).map { _ in Int.random(in: 0...n, using: &rng) }.sorted()
}

private func isUTF8(_ bytes: [UInt8]) -> Bool { String(validating: bytes, as: UTF8.self) != nil }

@Suite struct FuzzRegressionTests {
    // MARK: - Inputs the fuzz targets caught

    @Test func upgradeTokenFollowedByCommaAndCombiningMark() {
        let (result, end) = feedHead(upgradeCommaCombiningMark)
        guard case .complete(let head, _) = result else { Issue.record("\(result)"); return }
        #expect(end == upgradeCommaCombiningMark.count)
        #expect(head.firstValue(for: "upgrade") == "websocket,\u{301}")
        #expect(Handshake.validate(head) == .success("dGhlIHNhbXBsZSBub25jZQ=="))
        // The same in Connection, with a zero-width joiner after the comma, and with a tab before it.
        for (name, value) in [("connection", "keep-alive, upgrade,\u{301}"), ("connection", "Upgrade,\u{200D}"),
                              ("upgrade", "websocket\t,\u{200D}x")] {
            var h = head
            h.headers = h.headers.map { $0.name == name ? (name, value) : $0 }
            #expect(Handshake.validate(h) == .success("dGhlIHNhbXBsZSBub25jZQ=="), "\(name): \(value)")
        }
        // A mark on the token itself is still a different token.
        var marked = head
        marked.headers[0].value = "websocket\u{301}"
        #expect(Handshake.validate(marked) == .failure(.notAWebSocketUpgrade))
    }

    // MARK: - The fuzz targets' invariants on seeded random input

    /// Mutated upgrade requests: whole and split parses agree, heads are well-formed and survive
    /// re-serialisation, and the handshake and target parsing give consistent answers.
    @Test func randomHeadsParseTheSameWholeAndSplit() {
        let upgrade = ["Host: example.com", "Upgrade: websocket", "Connection: keep-alive, Upgrade",
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
        let extras = ["Origin: http://example.com", "X-A:b", "upgrade:WebSocket ", "Sec-WebSocket-Version: 8",
                      "Connection: close", "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA=="]
        let requestLines = ["GET /chat?token=abc&x=%E2%82%AC&&y+z=1 HTTP/1.1", "GET / HTTP/1.1", "GET /a?b HTTP/1.0",
                            "POST /p HTTP/1.1", "GET /%zz?%=%4 HTTP/2.0"]
        let noise: [UInt8] = [0x0D, 0x0A, 0x20, 0x09, 0x3A, 0x2C, 0x00, 0x7F, 0x80, 0xCC, 0x81, 0xFF, 0x3F, 0x26, 0x3D, 0x25, 0x2B, 0x41]
        var rng = SplitMix64(seed: 0xF022)
        var completed = 0, accepted = 0
        for n in 0..<2000 {
            var text = Bool.random(using: &rng) ? "" : "\r\n"
            text += requestLines.randomElement(using: &rng)! + "\r\n"
            var lines = upgrade.filter { _ in Int.random(in: 0..<12, using: &rng) > 0 }
            for _ in 0..<Int.random(in: 0...2, using: &rng) { lines.append(extras.randomElement(using: &rng)!) }
            for line in lines.shuffled(using: &rng) { text += line + "\r\n" }
            if n % 7 != 0 { text += "\r\n" }
            var bytes = Array(text.utf8)
            if n % 5 == 0 { bytes = bytes.filter { $0 != 0x0D } }  // bare LF line ends
            for _ in 0..<Int.random(in: 0...3, using: &rng) where !bytes.isEmpty {
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[i] = noise.randomElement(using: &rng)!
                case 1: bytes.insert(noise.randomElement(using: &rng)!, at: i)
                default: bytes.remove(at: i)
                }
            }
            if n % 3 == 0 { bytes += [0x81, 0x80, 1, 2, 3, 4] }  // an eager frame after the head
            let maxHeadSize = [16 * 1024, 0, 1, 16, 64, 128, 256][n % 7 == 3 ? Int.random(in: 1...6, using: &rng) : 0]

            let (whole, end) = feedHead(bytes, maxHeadSize: maxHeadSize)
            var patterns = [randomCuts(bytes.count, &rng), randomCuts(bytes.count, &rng)]
            if n % 10 == 0 && bytes.count > 1 { patterns.append(Array(1..<bytes.count)) }
            for cuts in patterns {
                let split = feedHead(bytes, cuts: cuts, maxHeadSize: maxHeadSize)
                #expect(split.0 == whole && split.end == end, "input \(n): \(whole) whole, \(split.0) split at \(cuts)")
            }
            switch whole {
            case .needMoreData:
                #expect(bytes.count <= maxHeadSize)
            case .failed(let error):
                #expect([.headTooLarge, .malformedRequestLine, .malformedHeader].contains(error), "input \(n): \(error)")
            case .complete(let head, _):
                completed += 1
                #expect(end! <= maxHeadSize && bytes[end! - 1] == 0x0A)
                var wire = "\(head.method) \(head.target) HTTP/\(head.version.major).\(head.version.minor)\r\n"
                for (name, value) in head.headers { wire += "\(name): \(value)\r\n" }
                #expect(feedHead(Array((wire + "\r\n").utf8)).0 == .complete(head, consumed: wire.utf8.count + 2))
                let verdict = Handshake.validate(head)
                if case .success(let key) = verdict {
                    accepted += 1
                    #expect(head.method == "GET" && head.version >= .http1_1)
                    #expect(head.values(for: "sec-websocket-key") == [key] && Base64.decode(key)?.count == 16)
                }
                let target = RequestTarget(head.target)
                if let q = head.target.firstIndex(of: "?") {
                    #expect(target.path == String(head.target[..<q]))
                } else {
                    #expect(target.path == head.target && target.query.isEmpty)
                }
            }
        }
        // The generator must reach the interesting states, or the test proves little.
        #expect(completed > 500 && accepted > 50, "\(completed) heads, \(accepted) upgrades")
    }

    /// Random, often broken, client frame streams: whole and split agree, a failed reader stays
    /// silent, and whatever is delivered respects UTF-8, the size limit and the close rules.
    @Test func randomFrameStreamsDecodeTheSameWholeAndSplit() {
        var rng = SplitMix64(seed: 0xF4A3E5)
        var failures = 0, texts = 0
        for n in 0..<2000 {
            let maxMessageSize = [1 << 20, 0, 1, 5, 125, 126, 300][n % 7]
            var bytes: [UInt8] = []
            var open = false  // mostly follow the fragmentation rules, so that many streams get far
            for _ in 0..<Int.random(in: 1...5, using: &rng) {
                let payload: [UInt8]
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: payload = Array(String(decoding: pattern(Int.random(in: 0...40, using: &rng), seed: rng.next()), as: UTF8.self).utf8)
                case 1: payload = Array("héllo €😀".utf8.prefix(Int.random(in: 0...14, using: &rng)))
                case 2: payload = pattern(Int.random(in: 120...400, using: &rng), seed: rng.next())
                default: payload = FrameEncoder.closePayload(code: [1000, 1005, 3000, 999, 4999][Int.random(in: 0..<5, using: &rng)], reason: "ok")
                }
                let opcode: Opcode = Int.random(in: 0..<4, using: &rng) == 0
                    ? [.text, .binary, .continuation, .ping, .pong, .close].randomElement(using: &rng)!
                    : open ? .continuation : Bool.random(using: &rng) ? .text : .binary
                let control = opcode.isControl
                let fin = control || Int.random(in: 0..<3, using: &rng) > 0
                if !control { open = !fin }
                bytes += clientFrame(opcode, control ? Array(payload.prefix(125)) : payload, fin: fin,
                                     rsv: Int.random(in: 0..<40, using: &rng) == 0 ? 4 : 0,
                                     rawOpcode: Int.random(in: 0..<40, using: &rng) == 0 ? 3 : nil,
                                     mask: Int.random(in: 0..<40, using: &rng) == 0 ? nil : pattern(4, seed: rng.next()))
            }
            if n % 4 == 0 && !bytes.isEmpty { bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng) }

            let whole = runToEnd(bytes, cuts: [], maxMessageSize: maxMessageSize)
            var patterns = [randomCuts(bytes.count, &rng), randomCuts(bytes.count, &rng)]
            if n % 10 == 0 && bytes.count > 1 { patterns.append(Array(1..<bytes.count)) }
            for cuts in patterns {
                #expect(runToEnd(bytes, cuts: cuts, maxMessageSize: maxMessageSize) == whole, "input \(n) split at \(cuts)")
            }
            if whole.result != .ok { failures += 1 }
            for event in whole.events {
                switch event {
                case .text(let b):
                    texts += 1
                    #expect(isUTF8(b) && b.count <= maxMessageSize)
                case .binary(let b): #expect(b.count <= maxMessageSize)
                case .ping(let b), .pong(let b): #expect(b.count <= 125)
                case .close(let code, let reason):
                    #expect(code.map(CloseHandshake.isValidReceivedCode) ?? reason.isEmpty)
                    #expect(isUTF8(reason) && reason.count <= 123)
                }
            }
        }
        #expect(failures > 200 && failures < 1900 && texts > 200, "\(failures) failed streams, \(texts) texts")
    }

    /// Well-formed fragmented messages with pings between fragments decode to exactly the
    /// messages sent, however they are split, and the first frame past the limit fails.
    @Test func randomWellFormedStreamsRoundTrip() {
        var rng = SplitMix64(seed: 0x6F0C)
        for n in 0..<1000 {
            let maxMessageSize = [1 << 20, 0, 10, 125, 126, 1000][n % 6]
            var bytes: [UInt8] = []
            var expected: [Event] = []
            var result = ReaderResult.ok
            messages: for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let isText = Bool.random(using: &rng)
                let length = [0, 3, 125, 126, 200, 1100][Int.random(in: 0..<6, using: &rng)]
                var payload = pattern(length, seed: rng.next())
                if isText { payload = Array(String(decoding: payload, as: UTF8.self).utf8) }
                let cuts = [0] + randomCuts(payload.count, &rng).prefix(3) + [payload.count]
                let mask = pattern(4, seed: rng.next())
                var size = 0
                for i in 0..<(cuts.count - 1) {
                    let piece = Array(payload[cuts[i]..<cuts[i + 1]])
                    bytes += clientFrame(i == 0 ? (isText ? .text : .binary) : .continuation, piece,
                                         fin: i == cuts.count - 2, mask: mask)
                    size += piece.count
                    if size > maxMessageSize {
                        result = .failed(.messageTooLarge)
                        break messages
                    }
                    if i < cuts.count - 2 && Bool.random(using: &rng) {
                        let ping = pattern(Int.random(in: 0...125, using: &rng), seed: rng.next())
                        bytes += clientFrame(.ping, ping, mask: mask)
                        expected.append(.ping(ping))
                    }
                }
                expected.append(isText ? .text(payload) : .binary(payload))
            }
            let want = ReaderRun(events: expected, result: result, pending: false)
            for cuts in [[], randomCuts(bytes.count, &rng), randomCuts(bytes.count, &rng)] {
                #expect(runToEnd(bytes, cuts: cuts, maxMessageSize: maxMessageSize) == want, "stream \(n) split at \(cuts)")
            }
        }
    }

    /// The incremental validator agrees with the standard library's, on random bytes fed in random pieces.
    @Test func utf8ValidatorAgreesWithStandardLibrary() {
        var rng = SplitMix64(seed: 0x0707)
        let alphabet: [UInt8] = [0x41, 0x7F, 0x80, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xA0, 0xED, 0x9F, 0xEF, 0xF0, 0x90, 0xF4, 0x8F, 0xF5]
        for _ in 0..<5000 {
            let bytes = (0..<Int.random(in: 0...12, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
            var v = UTF8Validator()
            var ok = true
            var start = 0
            for end in randomCuts(bytes.count, &rng) + [bytes.count] where ok {
                ok = bytes[start..<end].withUnsafeBytes { v.validate($0) }
                start = end
            }
            #expect((ok && v.isComplete) == isUTF8(bytes), "\(bytes)")
            #expect(UTF8Validator.isValid(bytes) == isUTF8(bytes), "\(bytes)")
        }
    }
}

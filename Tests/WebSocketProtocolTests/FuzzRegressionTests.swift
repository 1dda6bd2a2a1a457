import Testing
@testable import WebSocketProtocol

// Inputs that broke an invariant of the fuzz targets in Fuzz/, kept byte for byte minus the
// two control bytes the targets read first.

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
    0x31, 0x33, 0x0D, 0x0A, 0x0D, 0x0A,
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
}

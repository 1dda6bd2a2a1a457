import Testing
@testable import WebSocketProtocol

private func failure(_ e: ProtocolError) -> ReaderRun { ReaderRun(events: [], result: .failed(e), pending: false) }

@Suite struct FrameErrorTests {
    @Test(arguments: [
        ("unmasked", clientFrame(.text, bytesOf("Hi"), mask: nil), ProtocolError.unmaskedFrame),
        ("unmasked RFC hello", [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F], .unmaskedFrame),
        ("RSV1", clientFrame(.text, bytesOf("Hi"), rsv: 4), .reservedBitsSet),
        ("RSV2", clientFrame(.binary, bytesOf("Hi"), rsv: 2), .reservedBitsSet),
        ("RSV3", clientFrame(.ping, [], rsv: 1), .reservedBitsSet),
        ("fragmented ping", clientFrame(.ping, bytesOf("p"), fin: false), .fragmentedControlFrame),
        ("fragmented close", clientFrame(.close, [], fin: false), .fragmentedControlFrame),
        ("ping of 126 bytes", clientFrame(.ping, [UInt8](repeating: 0, count: 126)), .controlFrameTooLarge),
        ("close of 126 bytes", clientFrame(.close, [3, 232] + [UInt8](repeating: 0x61, count: 124)), .controlFrameTooLarge),
        ("continuation first", clientFrame(.continuation, bytesOf("x")), .unexpectedContinuation),
        ("text during fragmented text", clientFrame(.text, bytesOf("a"), fin: false) + clientFrame(.text, bytesOf("b")), .expectedContinuation),
        ("binary during fragmented text", clientFrame(.text, bytesOf("a"), fin: false) + clientFrame(.binary, bytesOf("b")), .expectedContinuation),
        ("64-bit length with MSB set", clientFrame(.binary, [], declaredLength: 1 << 63), .frameLengthTooLarge),
        ("close of 1 byte", clientFrame(.close, [0x03]), .invalidClosePayload),
        ("invalid UTF-8 text", clientFrame(.text, [0x61, 0xC0, 0x80]), .invalidUTF8),
        ("surrogate in text", clientFrame(.text, [0xED, 0xA0, 0x80]), .invalidUTF8),
        ("truncated UTF-8 at end of message", clientFrame(.text, [0x61, 0xE2, 0x82]), .invalidUTF8),
        ("truncated UTF-8 at end of fragments", clientFrame(.text, [0xE2], fin: false) + clientFrame(.continuation, [0x82]), .invalidUTF8),
        ("close reason invalid UTF-8", clientFrame(.close, [0x03, 0xE8, 0xFF]), .invalidUTF8),
    ] as [(String, [UInt8], ProtocolError)])
    func frameErrors(_ name: String, _ bytes: [UInt8], _ error: ProtocolError) {
        expectAllSplits(bytes, failure(error))
    }

    @Test func closeCodesOfErrors() {
        #expect(ProtocolError.invalidUTF8.closeCode == 1007)
        #expect(ProtocolError.messageTooLarge.closeCode == 1009)
        for e: ProtocolError in [.unmaskedFrame, .reservedBitsSet, .unknownOpcode(3), .fragmentedControlFrame,
                                 .controlFrameTooLarge, .unexpectedContinuation, .expectedContinuation,
                                 .frameLengthTooLarge, .invalidClosePayload] {
            #expect(e.closeCode == 1002, "\(e)")
            #expect(e.httpStatus == 400, "\(e)")
        }
        #expect(ProtocolError.headTooLarge.httpStatus == 431)
    }

    @Test(arguments: [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] as [UInt8])
    func unknownOpcodes(_ op: UInt8) {
        expectAllSplits(clientFrame(.binary, bytesOf("x"), rawOpcode: op), failure(.unknownOpcode(op)), random: 10)
        #expect(ProtocolError.unknownOpcode(op).closeCode == 1002)
    }

    @Test(arguments: [0, 1, 999, 1004, 1005, 1006, 1012, 1015, 1016, 1100, 2000, 2999, 5000, 65535] as [UInt16])
    func invalidCloseCodes(_ code: UInt16) {
        expectAllSplits(clientFrame(.close, [UInt8(code >> 8), UInt8(code & 0xFF)]), failure(.invalidClosePayload), random: 10)
    }

    @Test func errorsAfterGoodFramesKeepEarlierEvents() {
        let bytes = clientFrame(.text, bytesOf("ok")) + clientFrame(.ping, bytesOf("p"))
            + clientFrame(.text, bytesOf("a"), fin: false) + clientFrame(.text, bytesOf("b"))
        expectAllSplits(bytes, ReaderRun(events: [.text("ok"), .ping(bytesOf("p"))], result: .failed(.expectedContinuation), pending: false))
    }

    @Test func continuationAfterFinishedMessage() {
        let bytes = clientFrame(.text, bytesOf("a"), fin: false) + clientFrame(.continuation, bytesOf("b"))
            + clientFrame(.continuation, bytesOf("x"))
        expectAllSplits(bytes, ReaderRun(events: [.text("ab")], result: .failed(.unexpectedContinuation), pending: false))
    }

    @Test func failureIsSticky() {
        var reader = WebSocketReader()
        var events = 0
        var bad = clientFrame(.text, bytesOf("x"), mask: nil)
        #expect(bad.withUnsafeMutableBytes { reader.receive($0) { _ in events += 1 } } == .failed(.unmaskedFrame))
        var good = clientFrame(.text, bytesOf("fine"))
        #expect(good.withUnsafeMutableBytes { reader.receive($0) { _ in events += 1 } } == .failed(.unmaskedFrame))
        #expect(events == 0)
        #expect(!reader.hasPendingData)
    }

    @Test func invalidUTF8AcrossFragmentsFailsBeforeFinalFragment() {
        // F4 90 would encode a code point above U+10FFFF; each fragment alone looks harmless.
        let first = clientFrame(.text, bytesOf("κόσμε") + [0xF4], fin: false)
        let second = clientFrame(.continuation, [0x90, 0x80], fin: false)
        expectAllSplits(first + second, failure(.invalidUTF8))
        // The first fragment alone is fine and pending.
        #expect(runReader(first) == ReaderRun(events: [], result: .ok, pending: true))
    }

    @Test func invalidUTF8FailsMidFrameBeforePayloadCompletes() {
        // Autobahn 6.4.3: one frame chopped by TCP; fail as soon as the bad byte arrives.
        let frame = clientFrame(.text, bytesOf("hello") + [0xF4, 0x90, 0x80, 0x80] + bytesOf("world"))
        let headerLength = 6
        let upToBadByte = Array(frame.prefix(headerLength + 7))
        expectAllSplits(upToBadByte, failure(.invalidUTF8))
        #expect(runReader(Array(frame.prefix(headerLength + 5))) == ReaderRun(events: [], result: .ok, pending: true))
    }

    @Test func messageTooLargeFromHeaderBeforePayloadArrives() {
        // Only the 10 header bytes of a 2^40-byte frame: no mask, no payload yet.
        let header = Array(clientFrame(.binary, [], declaredLength: 1 << 40).prefix(10))
        expectAllSplits(header, failure(.messageTooLarge), maxMessageSize: 1000)
        let sixteenBit = Array(clientFrame(.text, [UInt8](repeating: 0x61, count: 1001)).prefix(4))
        expectAllSplits(sixteenBit, failure(.messageTooLarge), maxMessageSize: 1000)
        #expect(ProtocolError.messageTooLarge.closeCode == 1009)
    }

    @Test func messageTooLargeFromFragments() {
        let bytes = clientFrame(.binary, [UInt8](repeating: 1, count: 60), fin: false)
            + clientFrame(.ping, [])
            + clientFrame(.continuation, [UInt8](repeating: 2, count: 41))
        expectAllSplits(bytes, ReaderRun(events: [.ping([])], result: .failed(.messageTooLarge), pending: false), maxMessageSize: 100)
        // Exactly at the limit is accepted.
        let exact = clientFrame(.binary, [UInt8](repeating: 1, count: 60), fin: false)
            + clientFrame(.continuation, [UInt8](repeating: 2, count: 40))
        let run = runReader(exact, maxMessageSize: 100)
        #expect(run.result == .ok)
        #expect(run.events.count == 1)
    }
}

import Testing
@testable import WebSocketProtocol

/// The RFC 6455 §5.7 masked "Hello", byte for byte.
private let rfcMaskedHello: [UInt8] = [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
/// The RFC 6455 §5.7 masked pong with body "Hello".
private let rfcMaskedPong: [UInt8] = [0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]

@Suite struct FrameReaderTests {
    @Test func rfcMaskedTextHello() {
        expectAllSplits(rfcMaskedHello, ReaderRun(events: [.text("Hello")], result: .ok, pending: false))
    }

    @Test func rfcFragmentedHello() {
        let bytes = clientFrame(.text, bytesOf("Hel"), fin: false) + clientFrame(.continuation, bytesOf("lo"))
        #expect(Array(bytes.prefix(2)) == [0x01, 0x83])
        expectAllSplits(bytes, ReaderRun(events: [.text("Hello")], result: .ok, pending: false))
    }

    @Test func rfcPingAndPong() {
        let ping = clientFrame(.ping, bytesOf("Hello"))
        #expect(Array(ping.prefix(2)) == [0x89, 0x85])
        expectAllSplits(ping, ReaderRun(events: [.ping(bytesOf("Hello"))], result: .ok, pending: false))
        expectAllSplits(rfcMaskedPong, ReaderRun(events: [.pong(bytesOf("Hello"))], result: .ok, pending: false))
    }

    @Test func binary256With16BitLength() {
        let payload = pattern(256, seed: 1)
        let bytes = clientFrame(.binary, payload)
        #expect(Array(bytes.prefix(4)) == [0x82, 0xFE, 0x01, 0x00])
        expectAllSplits(bytes, ReaderRun(events: [.binary(payload)], result: .ok, pending: false))
    }

    @Test func binary64KiBWith64BitLength() {
        let payload = pattern(65536, seed: 2)
        let bytes = clientFrame(.binary, payload)
        #expect(Array(bytes.prefix(10)) == [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0])
        expectAllSplits(bytes, ReaderRun(events: [.binary(payload)], result: .ok, pending: false), random: 30)
    }

    @Test func mixedStreamWithControlFramesBetweenFragments() {
        let big = pattern(70000, seed: 3)
        let bytes = rfcMaskedHello
            + clientFrame(.text, bytesOf("Hel"), fin: false)
            + clientFrame(.ping, bytesOf("p1"))
            + clientFrame(.continuation, [], fin: false)
            + clientFrame(.pong, [])
            + clientFrame(.continuation, bytesOf("lo €"))
            + clientFrame(.binary, big, fin: false, mask: [1, 2, 3, 4])
            + clientFrame(.continuation, big, mask: [0xFF, 0, 0x80, 7])
            + clientFrame(.text, [])
            + clientFrame(.close, FrameEncoder.closePayload(code: 1000, reason: "bye"))
        let expected = ReaderRun(events: [
            .text("Hello"), .ping(bytesOf("p1")), .pong([]), .text("Hello €"), .binary(big + big), .text(""),
            .close(1000, bytesOf("bye")),
        ], result: .ok, pending: false)
        expectAllSplits(bytes, expected, random: 200)
    }

    @Test func utf8CodePointSplitAcrossFragments() {
        let euro = bytesOf("€")  // E2 82 AC
        let bytes = clientFrame(.text, [0x41, euro[0], euro[1]], fin: false) + clientFrame(.continuation, [euro[2]])
        expectAllSplits(bytes, ReaderRun(events: [.text("A€")], result: .ok, pending: false))
    }

    @Test func closeFrames() {
        expectAllSplits(clientFrame(.close, []), ReaderRun(events: [.close(nil, [])], result: .ok, pending: false))
        for code: UInt16 in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999] {
            let run = runReader(clientFrame(.close, FrameEncoder.closePayload(code: code, reason: "ok ✓")))
            #expect(run == ReaderRun(events: [.close(code, bytesOf("ok ✓"))], result: .ok, pending: false), "code \(code)")
        }
    }

    @Test func pendingDataTracksPartialFramesAndOpenMessages() {
        var reader = WebSocketReader()
        var events: [Event] = []
        func feed(_ bytes: [UInt8]) -> ReaderResult {
            var b = bytes
            return b.withUnsafeMutableBytes { reader.receive($0) { events.append(Event($0)) } }
        }
        #expect(!reader.hasPendingData)
        #expect(feed(Array(rfcMaskedHello.prefix(1))) == .ok)
        #expect(reader.hasPendingData)
        #expect(feed(Array(rfcMaskedHello.dropFirst())) == .ok)
        #expect(!reader.hasPendingData)
        #expect(feed(clientFrame(.text, bytesOf("a"), fin: false)) == .ok)
        #expect(reader.hasPendingData)
        #expect(feed(clientFrame(.continuation, bytesOf("b"))) == .ok)
        #expect(!reader.hasPendingData)
        #expect(events == [.text("Hello"), .text("ab")])
    }

    @Test func wholeFrameIsDeliveredInPlaceWithoutCopy() {
        var reader = WebSocketReader()
        var bytes = rfcMaskedHello + clientFrame(.binary, pattern(300, seed: 4))
        var offsets: [Int] = []
        let result = bytes.withUnsafeMutableBytes { buf in
            reader.receive(buf) { event in
                switch event {
                case .text(let p), .binary(let p): offsets.append(p.baseAddress! - UnsafeRawPointer(buf.baseAddress!))
                default: Issue.record("unexpected event")
                }
            }
        }
        #expect(result == .ok)
        #expect(offsets == [6, 11 + 8])
        #expect(Array(bytes[6..<11]) == bytesOf("Hello"))  // unmasked in place
    }

    @Test func idleReaderIsSmall() {
        // Idle connections hold only this inline state (arrays are empty, no heap storage).
        #expect(MemoryLayout<WebSocketReader>.size <= 128)
    }

    @Test func unmaskMatchesBytewiseXorAtEveryPhaseAndLength() {
        let key: [UInt8] = [0x11, 0x22, 0x33, 0x44]
        let keyWord = key.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        for phase in 0..<4 {
            for length in 0..<70 {
                let original = pattern(length, seed: UInt64(length * 4 + phase))
                var data = original
                data.withUnsafeMutableBytes { WebSocketReader.unmask($0, key: keyWord, phase: phase) }
                #expect(data == original.enumerated().map { $0.element ^ key[($0.offset + phase) & 3] })
            }
        }
    }
}

@Suite struct FrameEncoderTests {
    @Test func headerSizes() {
        #expect(FrameEncoder.headerSize(payloadLength: 0) == 2)
        #expect(FrameEncoder.headerSize(payloadLength: 125) == 2)
        #expect(FrameEncoder.headerSize(payloadLength: 126) == 4)
        #expect(FrameEncoder.headerSize(payloadLength: 65535) == 4)
        #expect(FrameEncoder.headerSize(payloadLength: 65536) == 10)
    }

    @Test func unmaskedServerFrames() {
        #expect(FrameEncoder.frame(opcode: .text, payload: bytesOf("Hello")) == [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        #expect(FrameEncoder.frame(opcode: .pong, payload: []) == [0x8A, 0x00])
        let f256 = FrameEncoder.frame(opcode: .binary, payload: [UInt8](repeating: 7, count: 256))
        #expect(Array(f256.prefix(4)) == [0x82, 0x7E, 0x01, 0x00])
        #expect(f256.count == 260)
        let f64k = FrameEncoder.frame(opcode: .binary, payload: [UInt8](repeating: 7, count: 65536))
        #expect(Array(f64k.prefix(10)) == [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
    }

    @Test func writeHeaderIntoCallerMemory() {
        var buffer = [UInt8](repeating: 0xEE, count: 12)
        let n = buffer.withUnsafeMutableBytes { FrameEncoder.writeHeader(opcode: .text, payloadLength: 300, into: $0.baseAddress!) }
        #expect(n == 4)
        #expect(Array(buffer.prefix(5)) == [0x81, 0x7E, 0x01, 0x2C, 0xEE])
    }

    /// Turns a server frame into the frame a client would send: set the mask bit, insert the key, XOR.
    private func masked(_ frame: [UInt8], key: [UInt8]) -> [UInt8] {
        let length7 = frame[1] & 0x7F
        let headerLength = length7 < 126 ? 2 : (length7 == 126 ? 4 : 10)
        var out = Array(frame[..<headerLength])
        out[1] |= 0x80
        out += key
        out += frame[headerLength...].enumerated().map { $0.element ^ key[$0.offset & 3] }
        return out
    }

    @Test(arguments: [0, 1, 5, 125, 126, 127, 1000, 65535, 65536, 100_000])
    func roundTrip(length: Int) {
        let payload = pattern(length, seed: UInt64(length))
        for opcode in [Opcode.binary, .ping] where !(opcode == .ping && length > 125) {
            let wire = masked(FrameEncoder.frame(opcode: opcode, payload: payload), key: [9, 8, 7, 6])
            let expected: Event = opcode == .ping ? .ping(payload) : .binary(payload)
            #expect(runReader(wire) == ReaderRun(events: [expected], result: .ok, pending: false))
        }
        let text = [UInt8](repeating: UInt8(ascii: "x"), count: length)
        let wire = masked(FrameEncoder.frame(opcode: .text, payload: text), key: [1, 0x80, 0xFF, 3])
        #expect(runReader(wire, cuts: length > 3 ? [3, length / 2] : []) == ReaderRun(events: [.text(text)], result: .ok, pending: false))
    }

    @Test func closePayloadTruncatesAtCharacterBoundary() {
        #expect(FrameEncoder.closePayload(code: 1000, reason: "") == [0x03, 0xE8])
        #expect(FrameEncoder.closePayload(code: 4001, reason: "hi") == [0x0F, 0xA1, 0x68, 0x69])
        let long = String(repeating: "é", count: 100)  // 200 bytes
        let payload = FrameEncoder.closePayload(code: 1001, reason: long)
        #expect(payload.count == 124)  // 2 + 61 × 2; 123 would split a character
        #expect(UTF8Validator.isValid(Array(payload.dropFirst(2))))
        let ascii = FrameEncoder.closePayload(code: 1001, reason: String(repeating: "a", count: 300))
        #expect(ascii.count == 125)
        // The reader accepts what the encoder produced.
        #expect(runReader(clientFrame(.close, payload)).result == .ok)
    }
}

// libFuzzer target for WebSocketReader (frame decoder, unmasking, message assembly,
// UTF-8 check, size limit) and UTF8Validator.
//
// Compiled together with Sources/WebSocketProtocol/*.swift into one module by
// scripts/fuzz.sh, so internal names are visible and nothing is imported.
//
// Input layout:
//   byte 0   bits 0-3: maxMessageSize (see `messageSizes`); bits 4-5: split strategy;
//            bit 6: sprinkle empty reads between pieces
//   byte 1   seed / parameter for the split strategy
//   rest     used twice: (1) as the raw byte stream a client sent, (2) as a recipe for a
//            stream of well-formed masked client frames whose messages are known in advance.
//
// Any violated invariant traps, which libFuzzer reports as a crash.

private let messageSizes = [1 << 20, 0, 1, 2, 3, 125, 126, 127, 200, 1000, 4096, 65535, 65536, 65537, 70000, 1 << 17]

/// A copy of an `InboundEvent` that outlives the callback.
private enum Event: Equatable {
    case text([UInt8]), binary([UInt8]), ping([UInt8]), pong([UInt8]), close(UInt16?, [UInt8])

    init(_ e: InboundEvent) {
        switch e {
        case .text(let p): self = .text(Array(p))
        case .binary(let p): self = .binary(Array(p))
        case .ping(let p): self = .ping(Array(p))
        case .pong(let p): self = .pong(Array(p))
        case .close(let code, let reason): self = .close(code, Array(reason))
        }
    }

    var size: Int {
        switch self {
        case .text(let b), .binary(let b), .ping(let b), .pong(let b): return b.count
        case .close(let code, let r): return (code == nil ? 0 : 2) + r.count
        }
    }
}

private struct Run: Equatable {
    var events: [Event]
    var result: ReaderResult
    var pending: Bool
}

private func isUTF8(_ bytes: [UInt8]) -> Bool {
    String(validating: bytes, as: UTF8.self) != nil
}

/// Feeds the pieces of `bytes` to one reader, each in its own buffer as a socket read would be.
/// Keeps feeding after a failure to check that the reader stays inert.
private func run(_ bytes: [UInt8], cuts: [Int], maxMessageSize: Int) -> Run {
    var reader = WebSocketReader(maxMessageSize: maxMessageSize)
    var events: [Event] = []
    var result = ReaderResult.ok
    var failed = false  // cheaper than comparing `result` on every piece
    var start = 0
    for end in cuts + [bytes.count] {
        var piece = Array(bytes[start..<end])
        start = end
        let before = events.count
        let r = piece.withUnsafeMutableBytes { reader.receive($0) { events.append(Event($0)) } }
        if failed {
            check(r == result && events.count == before, "a failed reader answered \(r) with \(events.count - before) events")
        } else if case .failed = r {
            failed = true
        }
        result = r
    }
    if failed {
        check(!reader.hasPendingData, "a failed reader holds data")
        var more: [UInt8] = [0x81, 0x80, 1, 2, 3, 4]  // an empty masked text frame
        let before = events.count
        let r = more.withUnsafeMutableBytes { reader.receive($0) { events.append(Event($0)) } }
        check(r == result && events.count == before, "a failed reader answered \(r) with \(events.count - before) events")
    }
    return Run(events: events, result: result, pending: reader.hasPendingData)
}

private func checkEvents(_ run: Run, inputSize: Int, maxMessageSize: Int) {
    var total = 0
    for event in run.events {
        total += event.size
        switch event {
        case .text(let b):
            check(isUTF8(b), "text message is not UTF-8: \(b)")
            check(b.count <= maxMessageSize, "\(b.count)-byte text over the \(maxMessageSize) limit")
        case .binary(let b):
            check(b.count <= maxMessageSize, "\(b.count)-byte binary over the \(maxMessageSize) limit")
        case .ping(let b), .pong(let b):
            check(b.count <= 125, "\(b.count)-byte control frame")
        case .close(nil, let reason):
            check(reason.isEmpty, "close without code has a reason")
        case .close(let code?, let reason):
            check(CloseHandshake.isValidReceivedCode(code), "close code \(code) delivered")
            check(isUTF8(reason) && reason.count <= 123, "close reason \(reason)")
        }
    }
    check(total <= inputSize, "\(total) payload bytes from \(inputSize) input bytes")
    if case .failed(let error) = run.result {
        check([1002, 1007, 1009].contains(error.closeCode), "error \(error) closes with \(error.closeCode)")
    }
}

/// The validator agrees with the standard library, whole and fed in pieces.
private func checkUTF8(_ bytes: [UInt8], cuts: [Int]) {
    let expected = isUTF8(bytes)
    check(UTF8Validator.isValid(bytes) == expected, "UTF8Validator.isValid disagrees with the stdlib")
    var v = UTF8Validator()
    var ok = true
    var start = 0
    for end in cuts + [bytes.count] where ok {
        ok = bytes[start..<end].withUnsafeBytes { v.validate($0) }
        check(ok != v.hasFailed, "validate returned \(ok) with hasFailed \(v.hasFailed)")
        start = end
    }
    check((ok && v.isComplete) == expected, "incremental UTF8Validator disagrees with the stdlib")
}

// MARK: - Round trip

/// Reads the recipe; payloads longer than what is left wrap around the input.
private struct Recipe {
    let bytes: [UInt8]
    var pos = 0
    mutating func byte() -> UInt8? {
        guard pos < bytes.count else { return nil }
        defer { pos += 1 }
        return bytes[pos]
    }
    mutating func payload(_ n: Int) -> [UInt8] {
        guard !bytes.isEmpty else { return [UInt8](repeating: 0x61, count: n) }
        var out: [UInt8] = []
        out.reserveCapacity(n)
        var i = pos % bytes.count
        while out.count < n {
            let k = min(n - out.count, bytes.count - i)
            out += bytes[i..<(i + k)]
            i = 0
        }
        pos += min(n, bytes.count - pos)
        return out
    }
}

/// A masked client frame, header written by FrameEncoder (minimal length encoding) plus the mask bit.
private func appendFrame(_ wire: inout [UInt8], _ opcode: Opcode, fin: Bool = true, _ payload: [UInt8], mask: [UInt8]) {
    var header = [UInt8](repeating: 0, count: 10)
    let n = header.withUnsafeMutableBytes {
        FrameEncoder.writeHeader(opcode: opcode, fin: fin, payloadLength: payload.count, into: $0.baseAddress!)
    }
    header[1] |= 0x80
    wire += header[..<n]
    wire += mask
    for (i, b) in payload.enumerated() { wire.append(b ^ mask[i & 3]) }
}

private let closeCodes: [UInt16] = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]

/// Builds a well-formed stream from the recipe and the run it must produce: every message,
/// control frames between fragments, and `.messageTooLarge` at the first frame that
/// takes a message past `maxMessageSize`.
private func plan(_ recipe: [UInt8], maxMessageSize: Int) -> (wire: [UInt8], expected: Run) {
    var r = Recipe(bytes: recipe)
    var wire: [UInt8] = []
    var events: [Event] = []
    var failure: ProtocolError?
    while failure == nil, wire.count < 1 << 15, let c = r.byte() {
        let l = Int(r.byte() ?? 0)
        let mask = c & 0x20 != 0 ? r.payload(4) : [0x37, 0xFA, 0x21, 0x3D]
        switch c & 3 {
        case 0, 1:
            let isText = c & 3 == 0
            // Lengths that need the 16-bit form are common; the 64-bit form (> 65535) only for l >= 250.
            let length = c & 0x80 == 0 ? l : l < 250 ? l * 8 + Int(c & 0x1F) : 65536 + (l - 250) * 3
            var payload = r.payload(length)
            if isText { payload = Array(String(decoding: payload, as: UTF8.self).utf8) }
            let fragments = Int((c >> 2) & 3) + 1
            let bounds = [0] + (1..<fragments).map { _ in Int(r.byte() ?? 0) * (payload.count + 1) / 256 }.sorted()
                + [payload.count]
            var size = 0
            for i in 0..<fragments {
                let piece = Array(payload[bounds[i]..<bounds[i + 1]])
                if size + piece.count > maxMessageSize {
                    failure = .messageTooLarge
                    // The header alone is enough to fail; the payload must not matter.
                    appendFrame(&wire, i == 0 ? (isText ? .text : .binary) : .continuation,
                                fin: i == fragments - 1, piece, mask: mask)
                    break
                }
                size += piece.count
                appendFrame(&wire, i == 0 ? (isText ? .text : .binary) : .continuation,
                            fin: i == fragments - 1, piece, mask: mask)
                if i < fragments - 1 && c & 0x40 != 0 {
                    let ping = r.payload(l % 126)
                    appendFrame(&wire, .ping, ping, mask: mask)
                    events.append(.ping(ping))
                }
            }
            if failure == nil { events.append(isText ? .text(payload) : .binary(payload)) }
        case 2:
            let payload = r.payload(l % 126)
            appendFrame(&wire, c & 4 != 0 ? .pong : .ping, payload, mask: mask)
            events.append(c & 4 != 0 ? .pong(payload) : .ping(payload))
        default:
            if l == 0 {
                appendFrame(&wire, .close, [], mask: mask)
                events.append(.close(nil, []))
            } else {
                let reason = String(decoding: r.payload(l % 130), as: UTF8.self)
                let payload = FrameEncoder.closePayload(code: closeCodes[l % closeCodes.count], reason: reason)
                appendFrame(&wire, .close, payload, mask: mask)
                events.append(.close(closeCodes[l % closeCodes.count], Array(payload[2...])))
            }
        }
    }
    return (wire, Run(events: events, result: failure.map { .failed($0) } ?? .ok, pending: false))
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrames(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 2 else { return 0 }
    let control = data[0], parameter = data[1]
    let bytes = Array(UnsafeBufferPointer(start: data + 2, count: size - 2))
    let maxMessageSize = messageSizes[Int(control & 15)]
    let mode = (control >> 4) & 3, empties = control & 0x40 != 0

    // (1) The raw bytes as a client stream: whole and split agree, and what is delivered is sound.
    let pieces = cuts(count: bytes.count, mode: mode, parameter: parameter, empties: empties)
    let whole = run(bytes, cuts: [], maxMessageSize: maxMessageSize)
    let split = run(bytes, cuts: pieces, maxMessageSize: maxMessageSize)
    check(whole == split, "whole \(whole) but split at \(pieces): \(split)")
    checkEvents(whole, inputSize: bytes.count, maxMessageSize: maxMessageSize)
    checkUTF8(bytes, cuts: pieces)

    // (2) The bytes as a recipe for well-formed frames: they decode to exactly the planned messages.
    let (wire, expected) = plan(bytes, maxMessageSize: maxMessageSize)
    let wirePieces = cuts(count: wire.count, mode: mode == 0 && wire.count > 4096 ? 1 : mode,
                          parameter: parameter, empties: empties)
    let decoded = run(wire, cuts: [], maxMessageSize: maxMessageSize)
    check(decoded == expected, "round trip: planned \(expected.events.count) events, \(expected.result); got \(decoded.events.count), \(decoded.result)")
    let decodedSplit = run(wire, cuts: wirePieces, maxMessageSize: maxMessageSize)
    check(decodedSplit == expected, "round trip split at \(wirePieces.count) points differs")
    return 0
}

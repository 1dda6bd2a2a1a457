import Testing
@testable import WebSocketProtocol

/// A copy of an `InboundEvent` that outlives the callback.
enum Event: Equatable, CustomStringConvertible {
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

    static func text(_ s: String) -> Event { .text(Array(s.utf8)) }

    var description: String {
        switch self {
        case .text(let b): return "text(\(b.count): \(String(decoding: b.prefix(40), as: UTF8.self)))"
        case .binary(let b): return "binary(\(b.count))"
        case .ping(let b): return "ping(\(b))"
        case .pong(let b): return "pong(\(b))"
        case .close(let c, let r): return "close(\(String(describing: c)), \(r))"
        }
    }
}

/// What feeding a byte stream to a fresh reader produced.
struct ReaderRun: Equatable {
    var events: [Event]
    var result: ReaderResult
    var pending: Bool
}

/// Feeds `bytes` to a fresh reader in pieces ending at `cuts` (ascending offsets), each piece
/// in its own mutable buffer as a socket read would be. Stops at the first failure.
func runReader(_ bytes: [UInt8], cuts: [Int] = [], maxMessageSize: Int = 1 << 20) -> ReaderRun {
    var reader = WebSocketReader(maxMessageSize: maxMessageSize)
    var events: [Event] = []
    var result = ReaderResult.ok
    var start = 0
    for end in cuts + [bytes.count] where end >= start {
        var piece = Array(bytes[start..<end])
        result = piece.withUnsafeMutableBytes { reader.receive($0) { events.append(Event($0)) } }
        start = end
        if result != .ok { break }
    }
    return ReaderRun(events: events, result: result, pending: reader.hasPendingData)
}

/// Cut patterns: whole, byte by byte, and `random` seeded random splits.
func splitPatterns(length: Int, random: Int = 50, seed: UInt64 = 42, byteByByte: Bool = true) -> [[Int]] {
    var patterns: [[Int]] = [[]]
    if byteByByte && length > 1 { patterns.append(Array(1..<length)) }
    var rng = SplitMix64(seed: seed)
    for _ in 0..<random where length > 1 {
        let n = Int.random(in: 1...min(12, length - 1), using: &rng)
        let cuts = (0..<n).map { _ in Int.random(in: 1..<length, using: &rng) }
        patterns.append(Array(Set(cuts)).sorted())
    }
    return patterns
}

/// Builds a client (masked) frame; every field can be bent to produce protocol violations.
func clientFrame(_ opcode: Opcode, _ payload: [UInt8], fin: Bool = true, rsv: UInt8 = 0,
                 rawOpcode: UInt8? = nil, mask: [UInt8]? = [0x37, 0xFA, 0x21, 0x3D],
                 declaredLength: UInt64? = nil) -> [UInt8] {
    var out: [UInt8] = [(fin ? 0x80 : 0) | (rsv << 4) | (rawOpcode ?? opcode.rawValue)]
    let maskBit: UInt8 = mask == nil ? 0 : 0x80
    let length = declaredLength ?? UInt64(payload.count)
    if declaredLength == nil && length < 126 {
        out.append(maskBit | UInt8(length))
    } else if declaredLength == nil && length <= 0xFFFF {
        out.append(maskBit | 126)
        out += [UInt8(length >> 8), UInt8(length & 0xFF)]
    } else {
        out.append(maskBit | 127)
        out += (0..<8).reversed().map { UInt8((length >> (8 * UInt64($0))) & 0xFF) }
    }
    if let mask {
        out += mask
        out += payload.enumerated().map { $0.element ^ mask[$0.offset & 3] }
    } else {
        out += payload
    }
    return out
}

func text(_ s: String, fin: Bool = true) -> [UInt8] { clientFrame(.text, Array(s.utf8), fin: fin) }

func bytesOf(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Asserts that every way of splitting `bytes` gives `expected`.
func expectAllSplits(_ bytes: [UInt8], _ expected: ReaderRun, random: Int = 100,
                     maxMessageSize: Int = 1 << 20, sourceLocation: SourceLocation = #_sourceLocation) {
    for cuts in splitPatterns(length: bytes.count, random: random, seed: UInt64(bytes.count)) {
        let run = runReader(bytes, cuts: cuts, maxMessageSize: maxMessageSize)
        #expect(run == expected, "cuts \(cuts.count <= 20 ? "\(cuts)" : "\(cuts.count) cuts")", sourceLocation: sourceLocation)
        if run != expected { return }
    }
}

func pattern(_ n: Int, seed: UInt64) -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    return (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
}

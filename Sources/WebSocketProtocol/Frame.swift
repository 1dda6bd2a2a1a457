/// RFC 6455 §5.2 opcodes; the others are reserved and rejected by the reader.
public enum Opcode: UInt8, Sendable {
    case continuation = 0
    case text = 1
    case binary = 2
    case close = 8
    case ping = 9
    case pong = 10

    /// Control frames (close, ping, pong) have the high opcode bit set.
    public var isControl: Bool { rawValue & 0x8 != 0 }
}

/// Server-side frame encoding. Server frames are never masked (RFC 6455 §5.1).
///
/// Headers are written straight into caller memory so a message fanned out to many
/// connections is encoded once and shared.
public enum FrameEncoder {
    /// Header bytes needed for a payload of this length: 2, 4 (16-bit length) or 10 (64-bit length).
    public static func headerSize(payloadLength: Int) -> Int {
        precondition(payloadLength >= 0, "negative payload length")
        if payloadLength < 126 { return 2 }
        if payloadLength <= 0xFFFF { return 4 }
        return 10
    }

    /// Writes a FIN frame header at `into`, which must have room for `headerSize(payloadLength:)` bytes.
    /// Returns the number of bytes written. Uses the minimal length encoding, as §5.2 requires.
    @inline(__always)
    public static func writeHeader(opcode: Opcode, payloadLength: Int, into: UnsafeMutableRawPointer) -> Int {
        writeHeader(opcode: opcode, fin: true, payloadLength: payloadLength, into: into)
    }

    /// Like `writeHeader(opcode:payloadLength:into:)` but lets the caller fragment a message.
    public static func writeHeader(opcode: Opcode, fin: Bool, payloadLength: Int, into: UnsafeMutableRawPointer) -> Int {
        precondition(payloadLength >= 0, "negative payload length")
        into.storeBytes(of: (fin ? 0x80 : 0) | opcode.rawValue, as: UInt8.self)
        if payloadLength < 126 {
            into.storeBytes(of: UInt8(payloadLength), toByteOffset: 1, as: UInt8.self)
            return 2
        }
        if payloadLength <= 0xFFFF {
            into.storeBytes(of: 126, toByteOffset: 1, as: UInt8.self)
            into.storeBytes(of: UInt16(payloadLength).bigEndian, toByteOffset: 2, as: UInt16.self)
            return 4
        }
        into.storeBytes(of: 127, toByteOffset: 1, as: UInt8.self)
        into.storeBytes(of: UInt64(payloadLength).bigEndian, toByteOffset: 2, as: UInt64.self)
        return 10
    }

    /// A whole frame in a new array; convenient off the hot path (control frames, tests).
    public static func frame(opcode: Opcode, payload: UnsafeRawBufferPointer) -> [UInt8] {
        let header = headerSize(payloadLength: payload.count)
        return [UInt8](unsafeUninitializedCapacity: header + payload.count) { buffer, initialized in
            let base = UnsafeMutableRawPointer(buffer.baseAddress!)
            _ = writeHeader(opcode: opcode, payloadLength: payload.count, into: base)
            if let src = payload.baseAddress, payload.count > 0 {
                (base + header).copyMemory(from: src, byteCount: payload.count)
            }
            initialized = header + payload.count
        }
    }

    /// A whole frame in a new array.
    public static func frame(opcode: Opcode, payload: [UInt8]) -> [UInt8] {
        payload.withUnsafeBytes { frame(opcode: opcode, payload: $0) }
    }

    /// A close payload: big-endian code then as much of `reason` as fits in 125 bytes,
    /// cut at a Character boundary so the peer never sees a broken code point (which it must reject).
    public static func closePayload(code: UInt16, reason: String) -> [UInt8] {
        var out: [UInt8] = [UInt8(code >> 8), UInt8(code & 0xFF)]
        var room = 123
        for character in reason {
            let utf8 = character.utf8
            if utf8.count > room { break }
            out.append(contentsOf: utf8)
            room -= utf8.count
        }
        return out
    }
}

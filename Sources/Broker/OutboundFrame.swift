import WebSocketProtocol
import Glibc

/// Bytes on their way to one or more peers, in one allocation (header and
/// bytes together). A room or broadcast delivery encodes its frame once and
/// every recipient's queue holds a reference to the same buffer.
final class OutboundFrame: ManagedBuffer<Int, UInt8> {
    /// The number of bytes.
    var count: Int { header }

    /// An encoded server frame (never masked) carrying `payload`.
    static func encode(_ opcode: Opcode, payload: UnsafeRawBufferPointer) -> OutboundFrame {
        let headerLength = FrameEncoder.headerSize(payloadLength: payload.count)
        let total = headerLength + payload.count
        let frame = unsafeDowncast(create(minimumCapacity: total) { _ in total }, to: OutboundFrame.self)
        frame.withUnsafeMutablePointerToElements { base in
            let written = FrameEncoder.writeHeader(opcode: opcode, payloadLength: payload.count, into: base)
            if let source = payload.baseAddress, payload.count > 0 {
                memcpy(base + written, source, payload.count)
            }
        }
        return frame
    }

    /// Raw bytes, for the HTTP responses that precede the frames.
    static func raw(_ bytes: [UInt8]) -> OutboundFrame {
        let frame = unsafeDowncast(create(minimumCapacity: bytes.count) { _ in bytes.count }, to: OutboundFrame.self)
        frame.withUnsafeMutablePointerToElements { base in
            bytes.withUnsafeBufferPointer { source in
                if let address = source.baseAddress { base.update(from: address, count: source.count) }
            }
        }
        return frame
    }
}

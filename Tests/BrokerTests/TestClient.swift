import Foundation
import Glibc

/// A deliberately simple blocking WebSocket client for in-process broker
/// tests: it shares no code with the broker's protocol module, so a bug there
/// cannot hide itself.
final class TestClient {
    let fd: Int32
    private var buffer: [UInt8] = []
    /// The HTTP status line and headers of the upgrade response.
    private(set) var responseHead = ""

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Connects to 127.0.0.1:port; every read gives up after `timeout` seconds.
    init(port: Int, timeout: Double = 5) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw Failure(description: "connect failed: errno \(errno)")
        }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Sends the upgrade request (plus `extra` bytes right behind it) and returns the response's status code.
    @discardableResult
    func upgrade(path: String = "/", extra: [UInt8] = []) throws -> Int {
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        try send(Array(request.utf8) + extra)
        while true {
            if let end = findHeadEnd() {
                responseHead = String(decoding: buffer[..<end], as: UTF8.self)
                buffer.removeFirst(end + 4)
                let parts = responseHead.split(separator: " ", maxSplits: 2)
                return parts.count > 1 ? Int(parts[1]) ?? -1 : -1
            }
            try fill()
        }
    }

    /// A masked client frame.
    static func frame(opcode: UInt8, payload: [UInt8], fin: Bool = true) -> [UInt8] {
        var bytes: [UInt8] = [(fin ? 0x80 : 0) | opcode]
        if payload.count < 126 {
            bytes.append(0x80 | UInt8(payload.count))
        } else if payload.count <= 0xFFFF {
            bytes.append(0x80 | 126)
            bytes += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            bytes.append(0x80 | 127)
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((payload.count >> shift) & 0xFF)) }
        }
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        bytes += mask
        for (index, byte) in payload.enumerated() { bytes.append(byte ^ mask[index % 4]) }
        return bytes
    }

    func sendText(_ text: String) throws { try send(Self.frame(opcode: 1, payload: Array(text.utf8))) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Failure(description: "send failed: errno \(errno)") }
            offset += n
        }
    }

    /// The next whole frame from the server (servers never mask).
    func receiveFrame() throws -> (opcode: UInt8, payload: [UInt8]) {
        while true {
            if buffer.count >= 2 {
                var length = Int(buffer[1] & 0x7F)
                var headerLength = 2
                if length == 126, buffer.count >= 4 {
                    length = Int(buffer[2]) << 8 | Int(buffer[3])
                    headerLength = 4
                } else if length == 127, buffer.count >= 10 {
                    length = (2..<10).reduce(0) { $0 << 8 | Int(buffer[$1]) }
                    headerLength = 10
                }
                if length < 126 || headerLength > 2, buffer.count >= headerLength + length {
                    let opcode = buffer[0] & 0x0F
                    let payload = Array(buffer[headerLength..<(headerLength + length)])
                    buffer.removeFirst(headerLength + length)
                    return (opcode, payload)
                }
            }
            try fill()
        }
    }

    func receiveText() throws -> String {
        let frame = try receiveFrame()
        guard frame.opcode == 1 else { throw Failure(description: "expected a text frame, got opcode \(frame.opcode)") }
        return String(decoding: frame.payload, as: UTF8.self)
    }

    /// True when the server closes the TCP connection within the read timeout.
    func waitForEndOfStream() -> Bool {
        while true {
            do { try fill() } catch let failure as Failure { return failure.description == "end of stream" } catch { return false }
        }
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n == 0 { throw Failure(description: "end of stream") }
        if n < 0 { throw Failure(description: "recv failed or timed out: errno \(errno)") }
        buffer += chunk[0..<n]
    }

    private func findHeadEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
            return i
        }
        return nil
    }
}

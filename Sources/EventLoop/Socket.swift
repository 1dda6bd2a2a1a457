import CNetShim
import Glibc

/// A peer accepted from a listening socket.
public struct AcceptedSocket {
    /// The connected, non-blocking descriptor.
    public let fd: Int32
    /// The peer's address as text, without the port ("127.0.0.1", "::1").
    public let address: String
    /// The peer's TCP port.
    public let port: Int
}

/// A non-blocking listening TCP socket.
public final class TCPListener {
    /// The descriptor, for registration with the loop.
    public let fd: Int32
    /// The port actually bound (useful with port 0).
    public let port: Int

    /// Binds and listens; port 0 picks a free port.
    public init(host: String, port: Int, backlog: Int32 = 1024) throws {
        var bound: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let fd = lsnet_listen_tcp(host, Int32(port), backlog, &bound, &message, message.count)
        guard fd >= 0 else {
            throw ListenError(message: text(ofNulTerminated: message))
        }
        self.fd = fd
        self.port = Int(bound)
    }

    /// Accepts one pending connection; nil when none is waiting. Errors other
    /// than "nothing pending" (EMFILE, ECONNABORTED, ...) are thrown so the
    /// caller can log them and back off.
    public func accept() throws -> AcceptedSocket? {
        var address = [CChar](repeating: 0, count: 64)
        var port: Int32 = 0
        let fd = lsnet_accept(self.fd, &address, address.count, &port)
        if fd >= 0 { return AcceptedSocket(fd: fd, address: text(ofNulTerminated: address), port: Int(port)) }
        if -fd == EAGAIN || -fd == EWOULDBLOCK { return nil }
        throw SystemError("accept", errno: -fd)
    }

    /// Closes the listening socket.
    public func close() { _ = lsnet_close(fd) }
}

/// Why listening failed, in words for the operator.
public struct ListenError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Raises the open-file limit as far as the hard limit allows, so the broker
/// can hold tens of thousands of connections. Returns the new limit.
@discardableResult
public func raiseFileDescriptorLimit() -> Int { lsnet_raise_fd_limit() }

/// Makes writes to a peer that has gone fail with EPIPE instead of killing the process.
public func ignoreSIGPIPE() { lsnet_ignore_sigpipe() }

/// The text in a NUL-terminated buffer a C function filled.
private func text(ofNulTerminated buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

/// The close handshake (RFC 6455 §5.5.1, §7) and what to do with frames around it,
/// as a state machine: the caller feeds events and switches on the returned action.
public struct CloseHandshake: Sendable {
    /// `closeSent`: we initiated and wait for the peer's close; `closed`: no more frames either way.
    public enum State: Equatable, Sendable { case open, closeSent, closed }

    public private(set) var state: State

    /// A handshake on a freshly upgraded connection.
    public init() {
        state = .open
    }

    /// What the caller must do next.
    public enum Action: Equatable, Sendable {
        /// Send a close frame; if `thenCloseTransport`, shut the socket once it is written.
        case sendClose(code: UInt16, reason: String, thenCloseTransport: Bool)
        /// The handshake is complete (or hopeless): close the socket.
        case closeTransport
        /// Reply with a pong echoing the ping's payload.
        case sendPong
        /// Pass the data message on to the application.
        case deliver
        /// Drop it, e.g. data or pings after we sent close.
        case ignore
    }

    /// The peer sent a close. While open we echo its code (1000 if it gave none, since
    /// 1005 must never be sent) and close; if we initiated, this completes the handshake.
    public mutating func receivedClose(code: UInt16?) -> Action {
        switch state {
        case .open:
            state = .closed
            return .sendClose(code: code ?? 1000, reason: "", thenCloseTransport: true)
        case .closeSent:
            state = .closed
            return .closeTransport
        case .closed:
            return .ignore
        }
    }

    /// The peer sent a ping. After we sent close the peer is expected to stop, so pings are not answered.
    public mutating func receivedPing() -> Action {
        state == .open ? .sendPong : .ignore
    }

    /// The peer sent a text or binary message; after we sent close it is discarded (§1.4).
    public mutating func receivedMessage() -> Action {
        state == .open ? .deliver : .ignore
    }

    /// The application wants to close. Only the first close is sent; the socket stays
    /// open until the peer answers (the caller should arm a timeout).
    public mutating func close(code: UInt16, reason: String) -> Action {
        guard state == .open else { return .ignore }
        state = .closeSent
        return .sendClose(code: code, reason: reason, thenCloseTransport: false)
    }

    /// The reader failed the connection (§7.1.7). If we already sent a close, a second one is
    /// not allowed, so the transport is just closed.
    public mutating func failed(_ error: ProtocolError) -> Action {
        switch state {
        case .open:
            state = .closed
            return .sendClose(code: error.closeCode, reason: error.reason, thenCloseTransport: true)
        case .closeSent:
            state = .closed
            return .closeTransport
        case .closed:
            return .ignore
        }
    }

    /// Codes a peer may put in a close frame: 1000-1003, 1007-1011 and the registered/private
    /// range 3000-4999. 1004-1006 and 1015 are reserved for local use and must not be sent.
    public static func isValidReceivedCode(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1011, 3000...4999: return true
        default: return false
        }
    }
}

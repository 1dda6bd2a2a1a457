/// Every way a peer can violate HTTP/1.1 upgrade or RFC 6455 framing.
///
/// One type for the whole module so the broker has exactly one place that turns
/// a failure into wire behaviour: an HTTP status before the upgrade, a close
/// code after it.
public enum ProtocolError: Error, Equatable, Sendable {
    // MARK: HTTP / handshake phase
    case malformedRequestLine
    case malformedHeader
    case headTooLarge
    /// The method was not GET; RFC 6455 §4.1 only defines a GET upgrade.
    case methodNotAllowed
    /// Older than HTTP/1.1 (an upgrade needs 1.1 semantics), or not HTTP/1.x at all.
    case unsupportedHTTPVersion
    /// Missing/invalid `Upgrade: websocket` or `Connection: upgrade` tokens.
    case notAWebSocketUpgrade
    /// `Sec-WebSocket-Key` absent, repeated, or not base64 of 16 bytes.
    case missingOrInvalidKey
    /// `Sec-WebSocket-Version` is not 13; the reply must advertise 13.
    case unsupportedVersion
    /// No `Host` header, or more than one (RFC 9112 §3.2 requires a 400 for both).
    case missingOrRepeatedHost

    // MARK: Frame phase
    case unmaskedFrame
    case reservedBitsSet
    case unknownOpcode(UInt8)
    case fragmentedControlFrame
    case controlFrameTooLarge
    /// A continuation frame arrived with no fragmented message open.
    case unexpectedContinuation
    /// A new text/binary frame arrived while a fragmented message was open.
    case expectedContinuation
    /// A 64-bit payload length with the most significant bit set.
    case frameLengthTooLarge
    case messageTooLarge
    /// Text message (or close reason) that is not UTF-8.
    case invalidUTF8
    /// A 1-byte close payload or a close code that must not appear on the wire.
    case invalidClosePayload

    /// The close code to send when this error ends a WebSocket connection (RFC 6455 §7.4.1).
    public var closeCode: UInt16 {
        switch self {
        case .invalidUTF8: return 1007
        case .messageTooLarge: return 1009
        case .malformedRequestLine, .malformedHeader, .headTooLarge, .methodNotAllowed,
             .unsupportedHTTPVersion, .notAWebSocketUpgrade, .missingOrInvalidKey, .unsupportedVersion,
             .missingOrRepeatedHost, .unmaskedFrame, .reservedBitsSet, .unknownOpcode, .fragmentedControlFrame,
             .controlFrameTooLarge, .unexpectedContinuation, .expectedContinuation,
             .frameLengthTooLarge, .invalidClosePayload:
            return 1002
        }
    }

    /// The HTTP status to answer with when this error rejects an upgrade request.
    public var httpStatus: Int {
        switch self {
        case .headTooLarge: return 431
        case .methodNotAllowed: return 405
        // Also for plain HTTP (no upgrade asked): the 426 names the protocol this port speaks.
        case .unsupportedVersion, .notAWebSocketUpgrade: return 426
        case .unsupportedHTTPVersion: return 505
        case .malformedRequestLine, .malformedHeader, .missingOrInvalidKey, .missingOrRepeatedHost,
             .unmaskedFrame, .reservedBitsSet, .unknownOpcode, .fragmentedControlFrame,
             .controlFrameTooLarge, .unexpectedContinuation, .expectedContinuation,
             .frameLengthTooLarge, .messageTooLarge, .invalidUTF8, .invalidClosePayload:
            return 400
        }
    }

    /// A short, ASCII, human-readable reason; fits a close frame (<= 123 bytes)
    /// and an HTTP error body without escaping.
    public var reason: String {
        switch self {
        case .malformedRequestLine: return "malformed request line"
        case .malformedHeader: return "malformed header"
        case .headTooLarge: return "request head too large"
        case .methodNotAllowed: return "method must be GET"
        case .unsupportedHTTPVersion: return "HTTP/1.1 required"
        case .notAWebSocketUpgrade: return "not a WebSocket upgrade"
        case .missingOrInvalidKey: return "missing or invalid Sec-WebSocket-Key"
        case .unsupportedVersion: return "unsupported Sec-WebSocket-Version"
        case .missingOrRepeatedHost: return "missing or repeated Host header"
        case .unmaskedFrame: return "client frames must be masked"
        case .reservedBitsSet: return "reserved bits set"
        case .unknownOpcode(let op): return "unknown opcode \(op)"
        case .fragmentedControlFrame: return "fragmented control frame"
        case .controlFrameTooLarge: return "control frame too large"
        case .unexpectedContinuation: return "unexpected continuation frame"
        case .expectedContinuation: return "expected continuation frame"
        case .frameLengthTooLarge: return "frame length too large"
        case .messageTooLarge: return "message too large"
        case .invalidUTF8: return "invalid UTF-8"
        case .invalidClosePayload: return "invalid close payload"
        }
    }
}

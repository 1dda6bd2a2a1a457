/// Incremental UTF-8 validator (Unicode 15 Table 3-7: no overlongs, no surrogates, nothing above U+10FFFF).
///
/// Incremental because a code point can straddle two fragments, and fail-fast because
/// RFC 6455 §8.1 wants the connection failed as soon as an invalid prefix is seen, not
/// when the message ends. State is one byte, so it costs nothing per connection.
public struct UTF8Validator: Sendable {
    // The state says what the next byte must be.
    private static let accept: UInt8 = 0
    private static let needOne: UInt8 = 1        // 80...BF then done
    private static let needTwo: UInt8 = 2        // 80...BF, 80...BF
    private static let needThree: UInt8 = 3      // 80...BF x3
    private static let afterE0: UInt8 = 4        // A0...BF (rules out overlong 3-byte forms)
    private static let afterED: UInt8 = 5        // 80...9F (rules out surrogates)
    private static let afterF0: UInt8 = 6        // 90...BF (rules out overlong 4-byte forms)
    private static let afterF4: UInt8 = 7        // 80...8F (rules out > U+10FFFF)
    private static let reject: UInt8 = 8

    private var state: UInt8 = 0

    /// A validator at the start of a message.
    public init() {}

    /// True when everything seen so far is a complete, valid UTF-8 sequence.
    public var isComplete: Bool { state == Self.accept }

    /// True once an invalid byte has been seen; sticky.
    public var hasFailed: Bool { state == Self.reject }

    /// Starts over for a new message.
    public mutating func reset() { state = Self.accept }

    /// Feeds the next bytes. Returns false as soon as the bytes so far cannot be a prefix of valid UTF-8.
    /// A true result with `isComplete == false` means a code point is split and continues in the next chunk.
    public mutating func validate(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return state != Self.reject }
        var s = state
        if s == Self.reject { return false }
        let count = bytes.count
        var i = 0
        while i < count {
            if s == Self.accept {
                // ASCII fast path: eight bytes per step while no high bit is set.
                while i + 8 <= count,
                      base.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                    i += 8
                }
                if i == count { break }
            }
            s = Self.step(s, base.load(fromByteOffset: i, as: UInt8.self))
            if s == Self.reject {
                state = s
                return false
            }
            i += 1
        }
        state = s
        return true
    }

    /// Convenience for a complete, unfragmented sequence.
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var v = UTF8Validator()
        return v.validate(bytes) && v.isComplete
    }

    /// Convenience for arrays (tests, close reasons).
    public static func isValid(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { isValid($0) }
    }

    @inline(__always)
    private static func step(_ s: UInt8, _ b: UInt8) -> UInt8 {
        switch s {
        case accept:
            switch b {
            case 0x00...0x7F: return accept
            case 0xC2...0xDF: return needOne
            case 0xE0: return afterE0
            case 0xE1...0xEC, 0xEE...0xEF: return needTwo
            case 0xED: return afterED
            case 0xF0: return afterF0
            case 0xF1...0xF3: return needThree
            case 0xF4: return afterF4
            default: return reject  // stray continuation, C0/C1 (always overlong), F5...FF
            }
        case needOne, needTwo, needThree:
            return (b & 0xC0 == 0x80) ? s - 1 : reject
        case afterE0:
            return (b >= 0xA0 && b <= 0xBF) ? needOne : reject
        case afterED:
            return (b >= 0x80 && b <= 0x9F) ? needOne : reject
        case afterF0:
            return (b >= 0x90 && b <= 0xBF) ? needTwo : reject
        case afterF4:
            return (b >= 0x80 && b <= 0x8F) ? needTwo : reject
        default:
            return reject
        }
    }
}

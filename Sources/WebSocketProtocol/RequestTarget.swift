/// A request target split into path and query parameters, for routing and auth tokens.
public struct RequestTarget: Equatable, Sendable {
    /// Everything before the first "?", exactly as sent (not percent-decoded), so that
    /// "%2F" and "/" stay distinguishable when routing and nothing is decoded twice.
    public var path: String
    /// Percent-decoded name/value pairs in order, repeats kept; "+" means space
    /// (HTML form encoding). A pair without "=" has an empty value; empty pairs ("&&") are skipped.
    public var query: [(name: String, value: String)]

    /// Splits `target`. Never fails: malformed escapes are kept literally.
    public init(_ target: String) {
        let utf8 = Array(target.utf8)
        guard let q = utf8.firstIndex(of: UInt8(ascii: "?")) else {
            path = target
            query = []
            return
        }
        path = String(decoding: utf8[..<q], as: UTF8.self)
        var pairs: [(name: String, value: String)] = []
        for pair in utf8[(q + 1)...].split(separator: UInt8(ascii: "&")) {
            if let eq = pair.firstIndex(of: UInt8(ascii: "=")) {
                pairs.append((Self.decode(pair[..<eq]), Self.decode(pair[(eq + 1)...])))
            } else {
                pairs.append((Self.decode(pair), ""))
            }
        }
        query = pairs
    }

    /// The first value of a query parameter, or nil.
    public func queryValue(_ name: String) -> String? {
        query.first { $0.name == name }?.value
    }

    /// Written by hand because tuples are not Equatable.
    public static func == (lhs: RequestTarget, rhs: RequestTarget) -> Bool {
        lhs.path == rhs.path && lhs.query.count == rhs.query.count
            && zip(lhs.query, rhs.query).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    /// Percent- and plus-decoding; invalid UTF-8 after decoding becomes U+FFFD.
    private static func decode(_ bytes: ArraySlice<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b = bytes[i]
            if b == UInt8(ascii: "+") {
                out.append(0x20)
            } else if b == UInt8(ascii: "%"), i + 2 < bytes.endIndex,
                      let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2]) {
                out.append(hi << 4 | lo)
                i += 2
            } else {
                out.append(b)
            }
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

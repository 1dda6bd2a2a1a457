import CCrypto

/// Client ids are random (version 4) UUIDs in lower-case text, as Python's
/// `uuid4()` prints them, drawn from OpenSSL's CSPRNG: a script may use them
/// as unguessable handles.
enum ClientID {
    private static let hexDigits = Array("0123456789abcdef".utf8)

    static func make() -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        if RAND_bytes(&bytes, 16) != 1 {
            // OpenSSL's generator does not fail once seeded; fall back rather than crash if it ever does.
            var generator = SystemRandomNumberGenerator()
            for i in 0..<16 { bytes[i] = UInt8.random(in: 0...255, using: &generator) }
        }
        bytes[6] = (bytes[6] & 0x0F) | 0x40  // version 4
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 4122 variant
        var text = [UInt8]()
        text.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 { text.append(UInt8(ascii: "-")) }
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

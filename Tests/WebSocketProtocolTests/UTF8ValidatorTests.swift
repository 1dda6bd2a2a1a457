import Testing
@testable import WebSocketProtocol

@Suite struct UTF8ValidatorTests {
    @Test(arguments: [
        ("empty", [], true),
        ("ascii", Array("Hello, world! 0123456789 long enough for the fast path".utf8), true),
        ("2-byte min U+0080", [0xC2, 0x80], true),
        ("2-byte max U+07FF", [0xDF, 0xBF], true),
        ("3-byte min U+0800", [0xE0, 0xA0, 0x80], true),
        ("U+D7FF", [0xED, 0x9F, 0xBF], true),
        ("U+E000", [0xEE, 0x80, 0x80], true),
        ("U+FFFF", [0xEF, 0xBF, 0xBF], true),
        ("4-byte min U+10000", [0xF0, 0x90, 0x80, 0x80], true),
        ("U+10FFFF", [0xF4, 0x8F, 0xBF, 0xBF], true),
        ("κόσμε", Array("κόσμε".utf8), true),
        ("emoji", Array("👩‍👩‍👧 €".utf8), true),
        ("stray continuation", [0x80], false),
        ("stray continuation after ascii block", Array("abcdefghij".utf8) + [0xBF], false),
        ("overlong / C0", [0xC0, 0xAF], false),
        ("overlong NUL C0 80", [0xC0, 0x80], false),
        ("overlong C1", [0xC1, 0xBF], false),
        ("overlong 3-byte", [0xE0, 0x80, 0xAF], false),
        ("overlong 3-byte max", [0xE0, 0x9F, 0xBF], false),
        ("overlong 4-byte", [0xF0, 0x80, 0x80, 0xAF], false),
        ("overlong 4-byte max", [0xF0, 0x8F, 0xBF, 0xBF], false),
        ("surrogate D800", [0xED, 0xA0, 0x80], false),
        ("surrogate DBFF", [0xED, 0xAF, 0xBF], false),
        ("surrogate DC00", [0xED, 0xB0, 0x80], false),
        ("surrogate DFFF", [0xED, 0xBF, 0xBF], false),
        ("surrogate pair encoded", [0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80], false),
        ("U+110000", [0xF4, 0x90, 0x80, 0x80], false),
        ("F5 lead", [0xF5, 0x80, 0x80, 0x80], false),
        ("FE", [0xFE], false),
        ("FF", [0xFF], false),
        ("truncated 2-byte", [0xC2], false),
        ("truncated 3-byte", [0xE2, 0x82], false),
        ("truncated 4-byte", [0xF0, 0x9F, 0x98], false),
        ("missing continuation", [0xE2, 0x41, 0x82], false),
        ("lead then lead", [0xC2, 0xC2, 0x80], false),
    ] as [(String, [UInt8], Bool)])
    func table(_ name: String, _ bytes: [UInt8], _ valid: Bool) {
        #expect(UTF8Validator.isValid(bytes) == valid, "\(name)")
        #expect((String(validating: bytes, as: UTF8.self) != nil) == valid, "stdlib disagrees on \(name)")
        // Byte-at-a-time feeding agrees with one shot.
        var v = UTF8Validator()
        var ok = true
        for b in bytes where ok { ok = [b].withUnsafeBytes { v.validate($0) } }
        #expect((ok && v.isComplete) == valid, "\(name) byte by byte")
    }

    @Test func failsFastOnInvalidPrefixButWaitsOnTruncation() {
        var v = UTF8Validator()
        #expect(([0xE2, 0x82] as [UInt8]).withUnsafeBytes { v.validate($0) })  // could still become €
        #expect(!v.isComplete)
        #expect(([0xAC] as [UInt8]).withUnsafeBytes { v.validate($0) })
        #expect(v.isComplete)
        #expect(!([0xF4, 0x90] as [UInt8]).withUnsafeBytes { v.validate($0) })  // cannot be valid whatever follows
        #expect(v.hasFailed)
        #expect(!([0x41] as [UInt8]).withUnsafeBytes { v.validate($0) })  // sticky
        v.reset()
        #expect(([0x41] as [UInt8]).withUnsafeBytes { v.validate($0) } && v.isComplete)
    }

    /// Random strings biased towards the interesting bytes, compared with the standard library,
    /// whole and split into random chunks.
    @Test func agreesWithStandardLibraryOnRandomBytes() {
        var rng = SplitMix64(seed: 2024)
        let interesting: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                                    0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
        var validCount = 0
        for i in 0..<20000 {
            var bytes: [UInt8]
            if i % 2 == 0 {
                // Valid text with one random mutation (or none) hits boundaries of the DFA.
                let scalars = (0..<Int.random(in: 0...12, using: &rng)).compactMap { _ -> Unicode.Scalar? in
                    let ranges: [ClosedRange<UInt32>] = [0...0x7F, 0x80...0x7FF, 0x800...0xFFFF, 0x10000...0x10FFFF]
                    return Unicode.Scalar(UInt32.random(in: ranges.randomElement(using: &rng)!, using: &rng))
                }
                bytes = Array(String(String.UnicodeScalarView(scalars)).utf8)
                if !bytes.isEmpty && Bool.random(using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = interesting.randomElement(using: &rng)!
                }
            } else {
                bytes = (0..<Int.random(in: 0...24, using: &rng)).map { _ in
                    Bool.random(using: &rng) ? interesting.randomElement(using: &rng)! : UInt8.random(in: 0...255, using: &rng)
                }
            }
            let expected = String(validating: bytes, as: UTF8.self) != nil
            if expected { validCount += 1 }
            #expect(UTF8Validator.isValid(bytes) == expected, "\(bytes)")

            var v = UTF8Validator()
            var ok = true
            var start = 0
            while start < bytes.count && ok {
                let end = min(bytes.count, start + Int.random(in: 1...5, using: &rng))
                ok = Array(bytes[start..<end]).withUnsafeBytes { v.validate($0) }
                start = end
            }
            #expect((ok && v.isComplete) == expected, "chunked \(bytes)")
        }
        #expect(validCount > 5000)  // the generator really exercises both outcomes
    }
}

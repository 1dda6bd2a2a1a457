// libFuzzer target for HTTPHeadParser, Handshake.validate and RequestTarget.
//
// Compiled together with Sources/WebSocketProtocol/*.swift into one module by
// scripts/fuzz.sh, so internal names are visible and nothing is imported.
//
// Input layout:
//   byte 0   bits 0-2: maxHeadSize (see `headSizes`); bits 3-4: split strategy;
//            bit 5: sprinkle empty feeds between pieces
//   byte 1   seed / parameter for the split strategy
//   rest     the bytes a client sent
//
// Every input is parsed whole and split into pieces; both must agree, and a
// byte-level reference model decides where the head ends and what the
// handshake answer must be. Any violation traps, which libFuzzer reports as a crash.

private let headSizes = [16 * 1024, 0, 1, 16, 64, 128, 256, 1024]

private enum Outcome: Equatable {
    case needMore
    case complete(HTTPRequestHead, end: Int)
    case failed(ProtocolError)
}

/// Feeds the pieces of `bytes` to one parser, checking the per-call contract, and stops at the first answer.
private func feed(_ bytes: [UInt8], cuts: [Int], maxHeadSize: Int) -> Outcome {
    var parser = HTTPHeadParser(maxHeadSize: maxHeadSize)
    var start = 0
    for end in cuts + [bytes.count] {
        let piece = Array(bytes[start..<end])
        let result = piece.withUnsafeBytes { parser.feed($0) }
        switch result {
        case .needMoreData:
            start = end
        case .complete(let head, let consumed):
            check(consumed >= 1 && consumed <= piece.count, "consumed \(consumed) of a \(piece.count)-byte feed")
            check(piece[consumed - 1] == ASCII.lf, "head does not end in LF")
            let again = piece.withUnsafeBytes { parser.feed($0) }
            check(again == .complete(head, consumed: 0), "a finished parser answered \(again)")
            return .complete(head, end: start + consumed)
        case .failed(let error):
            let again = [UInt8(ascii: "x")].withUnsafeBytes { parser.feed($0) }
            check(again == .failed(error), "a failed parser answered \(again)")
            return .failed(error)
        }
        if piece.isEmpty {
            check(result == .needMoreData, "an empty feed answered \(result)")
        }
    }
    return .needMore
}

/// Where the head ends, by the documented rule restated on whole input: skip leading CR/LF,
/// then the first LF whose line (since the previous LF) holds nothing but CRs ends it.
private func referenceEnd(_ b: [UInt8]) -> Int? {
    var i = 0
    while i < b.count && (b[i] == ASCII.cr || b[i] == ASCII.lf) { i += 1 }
    var lineStart = i
    var j = i
    while j < b.count {
        if b[j] == ASCII.lf {
            if j > i && b[lineStart..<j].allSatisfy({ $0 == ASCII.cr }) { return j + 1 }
            lineStart = j + 1
        }
        j += 1
    }
    return nil
}

/// Where the request line is judged: one past its LF, or past the first byte no request
/// line can hold (a control byte other than CR, or a non-ASCII byte), after leading CR/LF.
private func referenceRequestLineVerdict(_ b: [UInt8]) -> Int? {
    var i = 0
    while i < b.count && (b[i] == ASCII.cr || b[i] == ASCII.lf) { i += 1 }
    while i < b.count {
        let c = b[i]
        if c == ASCII.lf || ((c < 0x20 || c > 0x7E) && c != ASCII.cr) { return i + 1 }
        i += 1
    }
    return nil
}

private func isTchar(_ c: UInt8) -> Bool {
    // RFC 9110 tchar, spelled differently from ASCII.isTokenChar on purpose.
    if c >= 0x80 || c <= 0x20 || c == 0x7F { return false }
    return !Array("\"(),/:;<=>?@[\\]{}".utf8).contains(c)
}

/// HTTP lists are byte strings (RFC 9110 §5.6.1): split on ",", trim SP/HTAB, compare ASCII case-insensitively.
private func referenceHasToken(_ token: String, _ values: [String]) -> Bool {
    let want = Array(token.utf8).map(ASCII.lowercased)
    for value in values {
        for element in Array(value.utf8).split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            var e = element[...]
            while let f = e.first, f == ASCII.space || f == ASCII.tab { e = e.dropFirst() }
            while let l = e.last, l == ASCII.space || l == ASCII.tab { e = e.dropLast() }
            if e.map(ASCII.lowercased) == want { return true }
        }
    }
    return false
}

private func referenceValidate(_ head: HTTPRequestHead) -> Result<String, ProtocolError> {
    // HTTP/1.1 and later 1.x only: any other major version is not spoken here.
    if head.version.major != 1 || head.version.minor < 1 {
        return .failure(.unsupportedHTTPVersion)
    }
    if Array(head.method.utf8) != Array("GET".utf8) { return .failure(.methodNotAllowed) }
    if head.headers.filter({ Array($0.name.utf8) == Array("host".utf8) }).count != 1 {
        return .failure(.missingOrRepeatedHost)
    }
    if !referenceHasToken("websocket", head.values(for: "upgrade"))
        || !referenceHasToken("upgrade", head.values(for: "connection")) {
        return .failure(.notAWebSocketUpgrade)
    }
    let versions = head.values(for: "sec-websocket-version")
    if versions.count != 1 || Array(versions[0].utf8) != Array("13".utf8) { return .failure(.unsupportedVersion) }
    let keys = head.values(for: "sec-websocket-key")
    // 16 bytes in padded base64 are 22 alphabet characters and "==".
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    guard keys.count == 1 else { return .failure(.missingOrInvalidKey) }
    let k = Array(keys[0].utf8)
    guard k.count == 24, k[..<22].allSatisfy(alphabet.contains), k[22] == 0x3D, k[23] == 0x3D else {
        return .failure(.missingOrInvalidKey)
    }
    return .success(keys[0])
}

private func percentEncode(_ s: String) -> String {
    let hex = Array("0123456789ABCDEF".utf8)
    var out: [UInt8] = []
    for c in s.utf8 {
        let unreserved = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
            || c == UInt8(ascii: "-") || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "~")
        if unreserved { out.append(c) } else { out += [UInt8(ascii: "%"), hex[Int(c >> 4)], hex[Int(c & 15)]] }
    }
    return String(decoding: out, as: UTF8.self)
}

/// Checks a parsed head field by field, then the handshake and target parsing built on it.
private func checkHead(_ head: HTTPRequestHead) {
    let method = Array(head.method.utf8), target = Array(head.target.utf8)
    check(!method.isEmpty && method.allSatisfy(isTchar), "method \(method)")
    check(!target.isEmpty && target.allSatisfy { $0 > 0x20 && $0 < 0x7F }, "target \(target)")
    check((0...9).contains(head.version.major) && (0...9).contains(head.version.minor), "version \(head.version)")
    for (name, value) in head.headers {
        let n = Array(name.utf8), v = Array(value.utf8)
        check(!n.isEmpty && n.allSatisfy { isTchar($0) && !(0x41...0x5A).contains($0) }, "header name \(n)")
        check(v.allSatisfy { ($0 >= 0x20 && $0 != 0x7F) || $0 == ASCII.tab }, "header value \(v)")
        check(v.first.map { $0 != ASCII.space && $0 != ASCII.tab } ?? true, "value not trimmed \(v)")
        check(v.last.map { $0 != ASCII.space && $0 != ASCII.tab } ?? true, "value not trimmed \(v)")
    }

    // Serialising the parsed head and parsing it again gives the same head.
    var text = "\(head.method) \(head.target) HTTP/\(head.version.major).\(head.version.minor)\r\n"
    for (name, value) in head.headers { text += "\(name): \(value)\r\n" }
    text += "\r\n"
    let wire = Array(text.utf8)
    var reparser = HTTPHeadParser(maxHeadSize: wire.count)
    let reparsed = wire.withUnsafeBytes { reparser.feed($0) }
    check(reparsed == .complete(head, consumed: wire.count), "re-serialised head parses as \(reparsed)")

    // The handshake: deterministic, and the same verdict as the byte-level reference.
    let verdict = Handshake.validate(head)
    check(verdict == Handshake.validate(head), "validate is not deterministic")
    check(verdict == referenceValidate(head), "validate \(verdict), reference \(referenceValidate(head))")
    switch verdict {
    case .success(let key):
        let accept = Handshake.acceptValue(forKey: key)
        check(accept.utf8.count == 28 && Base64.decode(accept)?.count == 20, "accept value \(accept)")
        let response = Handshake.switchingProtocolsResponse(acceptValue: accept)
        check(response.suffix(4) == [13, 10, 13, 10], "101 response does not end its head")
    case .failure(let error):
        check((400..<600).contains(error.httpStatus), "status \(error.httpStatus) for \(error)")
        let response = Handshake.errorResponse(for: error)
        let prefix = Array("HTTP/1.1 \(error.httpStatus) ".utf8)
        check(Array(response.prefix(prefix.count)) == prefix, "error response status line")
        guard let blank = (0..<(response.count - 3)).first(where: { response[$0..<($0 + 4)] == [13, 10, 13, 10] }) else {
            return check(false, "error response has no blank line")
        }
        let body = response.count - blank - 4
        let headText = String(decoding: response[..<blank], as: UTF8.self)
        check(headText.contains("\r\nContent-Length: \(body)\r\n"), "Content-Length does not match a \(body)-byte body")
    }

    // The target: path is what precedes the first "?", and re-encoding the decoded
    // query gives the same decoded query back.
    let parsed = RequestTarget(head.target)
    if let q = target.firstIndex(of: UInt8(ascii: "?")) {
        check(Array(parsed.path.utf8) == Array(target[..<q]), "path \(parsed.path) of \(head.target)")
        let pieces = target[(q + 1)...].split(separator: UInt8(ascii: "&"))
        check(parsed.query.count == pieces.count, "\(parsed.query.count) pairs from \(pieces.count) pieces")
        let rebuilt = parsed.path + "?" + parsed.query.map { percentEncode($0.name) + "=" + percentEncode($0.value) }
            .joined(separator: "&")
        check(RequestTarget(rebuilt) == parsed, "re-encoded query \(rebuilt) differs")
        if let first = parsed.query.first {
            check(parsed.queryValue(first.name) == first.value, "queryValue is not the first value")
        }
    } else {
        check(parsed.path == head.target && parsed.query.isEmpty, "target without query \(head.target)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPHead(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 2 else { return 0 }
    let control = data[0], parameter = data[1]
    let bytes = Array(UnsafeBufferPointer(start: data + 2, count: size - 2))
    let maxHeadSize = headSizes[Int(control & 7)]

    let whole = feed(bytes, cuts: [], maxHeadSize: maxHeadSize)
    let pieces = cuts(count: bytes.count, mode: (control >> 3) & 3, parameter: parameter, empties: control & 0x20 != 0)
    let split = feed(bytes, cuts: pieces, maxHeadSize: maxHeadSize)
    check(whole == split, "whole \(whole), split \(split) at \(pieces)")

    let end = referenceEnd(bytes)
    let lineVerdict = referenceRequestLineVerdict(bytes)
    switch whole {
    case .needMore:
        check(end == nil && bytes.count <= maxHeadSize, "needMore, reference end \(String(describing: end))")
    case .complete(let head, let headEnd):
        check(headEnd == end && headEnd <= maxHeadSize, "head ends at \(headEnd), reference \(String(describing: end))")
        checkHead(head)
    case .failed(.headTooLarge):
        let tooLarge = end.map { $0 > maxHeadSize } ?? (bytes.count > maxHeadSize)
        check(tooLarge || lineVerdict.map { $0 > maxHeadSize } == true, "headTooLarge, reference \(String(describing: end))")
    case .failed(.malformedRequestLine):
        // Judged when the request line ends (or at a byte no request line holds), not at the head's end.
        check(lineVerdict.map { $0 <= maxHeadSize } ?? false, "malformed request line, reference \(String(describing: lineVerdict))")
    case .failed(.malformedHeader):
        check(end.map { $0 <= maxHeadSize } ?? false, "malformed, reference \(String(describing: end))")
    case .failed(let error):
        check(false, "the parser returned a non-parse error \(error)")
    }
    return 0
}

/// What the reader hands out. Pointers are valid only during the callback: they point
/// into the caller's input buffer (whole frames) or the reader's reassembly buffer.
public enum InboundEvent {
    /// A whole text message whose UTF-8 has already been validated.
    case text(UnsafeRawBufferPointer)
    /// A whole binary message.
    case binary(UnsafeRawBufferPointer)
    case ping(UnsafeRawBufferPointer)
    case pong(UnsafeRawBufferPointer)
    /// A validated close: `code` is nil for an empty payload; otherwise it is a code allowed
    /// on the wire and `reason` is valid UTF-8.
    case close(code: UInt16?, reason: UnsafeRawBufferPointer)
}

/// The outcome of `WebSocketReader.receive`.
public enum ReaderResult: Equatable, Sendable {
    case ok
    /// The connection must be failed with `error.closeCode`; the reader is now inert.
    case failed(ProtocolError)
}

/// Frame decoder, message assembler and UTF-8 validator for one server-side connection.
///
/// Built for the hot path: an unfragmented frame that arrives whole is unmasked in the
/// caller's buffer and delivered from there with no copy and no allocation. Bytes are only
/// held when a frame is split across reads or a message is fragmented, and that storage is
/// released once the message is delivered, so an idle connection holds no heap memory.
public struct WebSocketReader {
    /// Largest message (sum of fragments) accepted; larger fails with `.messageTooLarge`.
    public let maxMessageSize: Int

    /// A partial frame header (at most 14 bytes), inline so split headers allocate nothing.
    private var headerBytes: (UInt64, UInt64) = (0, 0)
    private var headerCount = 0

    /// The frame whose payload is still arriving, if `inPayload`.
    private var inPayload = false
    private var frameOpcode: Opcode = .continuation
    private var frameFin = false
    private var frameMask: UInt32 = 0
    private var frameRemaining = 0
    private var frameMaskPhase = 0

    /// The open message (text/binary) being assembled, nil between messages.
    private var messageOpcode: Opcode?
    private var message: [UInt8] = []
    private var utf8 = UTF8Validator()
    /// A control frame payload split across reads (at most 125 bytes).
    private var control: [UInt8] = []

    private var failure: ProtocolError?

    /// Creates a reader for one connection.
    public init(maxMessageSize: Int = 1 << 20) {
        precondition(maxMessageSize >= 0, "negative maxMessageSize")
        self.maxMessageSize = maxMessageSize
    }

    /// True when bytes of an unfinished frame or message are held.
    public var hasPendingData: Bool {
        headerCount > 0 || inPayload || messageOpcode != nil
    }

    /// Parses every frame `bytes` completes, calling `onEvent` for each message and control
    /// frame in order, and keeps any partial frame for the next call.
    ///
    /// `bytes` is unmasked in place, so its contents are garbage afterwards. Control frames
    /// between fragments are delivered immediately. Events before an error in the same
    /// buffer are still delivered. After the first error every call returns that error.
    public mutating func receive(_ bytes: UnsafeMutableRawBufferPointer, _ onEvent: (InboundEvent) -> Void) -> ReaderResult {
        if let failure { return .failed(failure) }
        guard let base = bytes.baseAddress else { return .ok }
        let end = bytes.count
        var pos = 0
        while pos < end {
            if inPayload {
                let n = min(frameRemaining, end - pos)
                let chunk = UnsafeMutableRawBufferPointer(start: base + pos, count: n)
                pos += n
                if let error = continuePayload(chunk, onEvent) { return fail(error) }
                continue
            }
            let header: FrameHeader
            if headerCount > 0 {
                // Top up the inline header; bytes copied past its end are given back to the input.
                let before = headerCount
                let take = min(14 - before, end - pos)
                withUnsafeMutableBytes(of: &headerBytes) {
                    $0.baseAddress!.advanced(by: before).copyMemory(from: base + pos, byteCount: take)
                }
                headerCount += take
                let parsed = withUnsafeBytes(of: headerBytes) { parseHeader($0.baseAddress!, headerCount) }
                switch parsed {
                case .needMore:
                    return .ok  // the whole input went into the header
                case .failed(let error):
                    return fail(error)
                case .header(let h):
                    headerCount = 0
                    pos += h.headerLength - before
                    header = h
                }
            } else {
                switch parseHeader(base + pos, end - pos) {
                case .needMore:
                    let rest = end - pos
                    withUnsafeMutableBytes(of: &headerBytes) {
                        $0.baseAddress!.copyMemory(from: base + pos, byteCount: rest)
                    }
                    headerCount = rest
                    return .ok
                case .failed(let error):
                    return fail(error)
                case .header(let h):
                    pos += h.headerLength
                    header = h
                }
            }
            if header.length <= end - pos {
                let payload = UnsafeMutableRawBufferPointer(start: base + pos, count: header.length)
                Self.unmask(payload, key: header.mask, phase: 0)
                pos += header.length
                if let error = wholeFrame(header, payload, onEvent) { return fail(error) }
            } else {
                startPayload(header)
            }
        }
        return .ok
    }

    // MARK: - Frame handling

    private struct FrameHeader {
        var fin: Bool
        var opcode: Opcode
        var mask: UInt32
        var length: Int
        var headerLength: Int
    }

    private enum HeaderParse {
        case needMore
        case header(FrameHeader)
        case failed(ProtocolError)
    }

    /// Parses and validates a header from `avail` bytes. Each rule is checked as soon as its
    /// bytes are present, in a fixed order, so the verdict never depends on how input was split.
    private func parseHeader(_ p: UnsafeRawPointer, _ avail: Int) -> HeaderParse {
        guard avail >= 1 else { return .needMore }
        let b0 = p.load(as: UInt8.self)
        // No extensions are negotiated, so any RSV bit is a protocol error (§5.2).
        if b0 & 0x70 != 0 { return .failed(.reservedBitsSet) }
        guard let opcode = Opcode(rawValue: b0 & 0x0F) else { return .failed(.unknownOpcode(b0 & 0x0F)) }
        let fin = b0 & 0x80 != 0
        if opcode.isControl {
            if !fin { return .failed(.fragmentedControlFrame) }
        } else if opcode == .continuation {
            if messageOpcode == nil { return .failed(.unexpectedContinuation) }
        } else if messageOpcode != nil {
            return .failed(.expectedContinuation)
        }
        guard avail >= 2 else { return .needMore }
        let b1 = p.load(fromByteOffset: 1, as: UInt8.self)
        if b1 & 0x80 == 0 { return .failed(.unmaskedFrame) }
        let length7 = Int(b1 & 0x7F)
        if opcode.isControl && length7 > 125 { return .failed(.controlFrameTooLarge) }
        var length = length7
        var headerLength = 6
        if length7 == 126 {
            headerLength = 8
            guard avail >= 4 else { return .needMore }
            length = Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
        } else if length7 == 127 {
            headerLength = 14
            guard avail >= 10 else { return .needMore }
            let length64 = UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt64.self))
            if length64 >> 63 != 0 { return .failed(.frameLengthTooLarge) }
            // Compared as UInt64 so a huge length cannot overflow Int on 32-bit platforms.
            if length64 > UInt64(maxMessageSize - message.count) { return .failed(.messageTooLarge) }
            length = Int(length64)
        }
        // Checked against the declared length so an oversized message fails before its payload arrives.
        if !opcode.isControl && length > maxMessageSize - message.count { return .failed(.messageTooLarge) }
        guard avail >= headerLength else { return .needMore }
        let mask = p.loadUnaligned(fromByteOffset: headerLength - 4, as: UInt32.self)
        return .header(FrameHeader(fin: fin, opcode: opcode, mask: mask, length: length, headerLength: headerLength))
    }

    /// A frame whose payload is entirely in the input (already unmasked).
    private mutating func wholeFrame(_ h: FrameHeader, _ payload: UnsafeMutableRawBufferPointer,
                                     _ onEvent: (InboundEvent) -> Void) -> ProtocolError? {
        if h.opcode.isControl {
            return deliverControl(h.opcode, UnsafeRawBufferPointer(payload), onEvent)
        }
        if messageOpcode == nil && h.fin {
            // The common case: deliver straight from the caller's buffer.
            if h.opcode == .text {
                guard UTF8Validator.isValid(UnsafeRawBufferPointer(payload)) else { return .invalidUTF8 }
                onEvent(.text(UnsafeRawBufferPointer(payload)))
            } else {
                onEvent(.binary(UnsafeRawBufferPointer(payload)))
            }
            return nil
        }
        if messageOpcode == nil { openMessage(h.opcode, expected: h.length) }
        if let error = appendToMessage(payload) { return error }
        return h.fin ? finishMessage(onEvent) : nil
    }

    /// A frame whose payload continues in later reads.
    private mutating func startPayload(_ h: FrameHeader) {
        inPayload = true
        frameOpcode = h.opcode
        frameFin = h.fin
        frameMask = h.mask
        frameRemaining = h.length
        frameMaskPhase = 0
        if h.opcode.isControl {
            control.reserveCapacity(h.length)
        } else if messageOpcode == nil {
            openMessage(h.opcode, expected: h.length)
        }
    }

    /// Consumes the next chunk of a split frame's payload. Data is validated as it arrives
    /// so invalid UTF-8 fails even in the middle of one frame (Autobahn 6.4.3/6.4.4).
    private mutating func continuePayload(_ chunk: UnsafeMutableRawBufferPointer,
                                          _ onEvent: (InboundEvent) -> Void) -> ProtocolError? {
        Self.unmask(chunk, key: frameMask, phase: frameMaskPhase)
        frameMaskPhase = (frameMaskPhase + chunk.count) & 3
        frameRemaining -= chunk.count
        if frameOpcode.isControl {
            control.append(contentsOf: chunk)
            guard frameRemaining == 0 else { return nil }
            inPayload = false
            let opcode = frameOpcode
            let result = control.withUnsafeBytes { deliverControl(opcode, $0, onEvent) }
            control = []
            return result
        }
        if let error = appendToMessage(chunk) { return error }
        guard frameRemaining == 0 else { return nil }
        inPayload = false
        return frameFin ? finishMessage(onEvent) : nil
    }

    private mutating func openMessage(_ opcode: Opcode, expected: Int) {
        messageOpcode = opcode
        utf8.reset()
        // Capped so a header that merely declares a large frame cannot reserve memory for it.
        message.reserveCapacity(min(expected, 16 * 1024))
    }

    private mutating func appendToMessage(_ chunk: UnsafeMutableRawBufferPointer) -> ProtocolError? {
        if messageOpcode == .text && !utf8.validate(UnsafeRawBufferPointer(chunk)) { return .invalidUTF8 }
        message.append(contentsOf: chunk)
        return nil
    }

    private mutating func finishMessage(_ onEvent: (InboundEvent) -> Void) -> ProtocolError? {
        let isText = messageOpcode == .text
        if isText && !utf8.isComplete { return .invalidUTF8 }
        message.withUnsafeBytes { onEvent(isText ? .text($0) : .binary($0)) }
        // Dropping the storage (not just the contents) keeps idle connections at zero heap.
        message = []
        messageOpcode = nil
        return nil
    }

    private func deliverControl(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer,
                                _ onEvent: (InboundEvent) -> Void) -> ProtocolError? {
        switch opcode {
        case .ping:
            onEvent(.ping(payload))
        case .pong:
            onEvent(.pong(payload))
        case .close:
            if payload.isEmpty {
                onEvent(.close(code: nil, reason: payload))
                return nil
            }
            guard payload.count >= 2 else { return .invalidClosePayload }
            let code = UInt16(payload[0]) << 8 | UInt16(payload[1])
            guard CloseHandshake.isValidReceivedCode(code) else { return .invalidClosePayload }
            let reason = UnsafeRawBufferPointer(rebasing: payload[2...])
            guard UTF8Validator.isValid(reason) else { return .invalidUTF8 }
            onEvent(.close(code: code, reason: reason))
        case .text, .binary, .continuation:
            preconditionFailure("data opcode routed as control")
        }
        return nil
    }

    private mutating func fail(_ error: ProtocolError) -> ReaderResult {
        failure = error
        message = []
        control = []
        messageOpcode = nil
        inPayload = false
        headerCount = 0
        return .failed(error)
    }

    // MARK: - Unmasking

    /// XORs `buffer` with the 4-byte mask, starting `phase` bytes into the mask cycle
    /// (a frame's payload may arrive in pieces of any length). Eight bytes per step.
    @inline(__always)
    static func unmask(_ buffer: UnsafeMutableRawBufferPointer, key: UInt32, phase: Int) {
        guard let p = buffer.baseAddress, !buffer.isEmpty else { return }
        var k = key
        if phase != 0 {
            withUnsafeBytes(of: key) { src in
                withUnsafeMutableBytes(of: &k) { dst in
                    for j in 0..<4 { dst[j] = src[(phase + j) & 3] }
                }
            }
        }
        let k64 = UInt64(k) | UInt64(k) << 32
        let n = buffer.count
        var i = 0
        while i + 32 <= n {
            p.storeBytes(of: p.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ k64, toByteOffset: i, as: UInt64.self)
            p.storeBytes(of: p.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self) ^ k64, toByteOffset: i + 8, as: UInt64.self)
            p.storeBytes(of: p.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self) ^ k64, toByteOffset: i + 16, as: UInt64.self)
            p.storeBytes(of: p.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self) ^ k64, toByteOffset: i + 24, as: UInt64.self)
            i += 32
        }
        while i + 8 <= n {
            p.storeBytes(of: p.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ k64, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        withUnsafeBytes(of: k) { kb in
            while i < n {
                buffer[i] ^= kb[i & 3]
                i += 1
            }
        }
    }
}

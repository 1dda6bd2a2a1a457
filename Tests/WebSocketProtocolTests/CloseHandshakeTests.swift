import Testing
@testable import WebSocketProtocol

@Suite struct CloseHandshakeTests {
    @Test func peerInitiatedCloseIsEchoed() {
        var h = CloseHandshake()
        #expect(h.state == .open)
        #expect(h.receivedMessage() == .deliver)
        #expect(h.receivedPing() == .sendPong)
        #expect(h.receivedClose(code: 1001) == .sendClose(code: 1001, reason: "", thenCloseTransport: true))
        #expect(h.state == .closed)
        #expect(h.receivedMessage() == .ignore)
        #expect(h.receivedPing() == .ignore)
        #expect(h.receivedClose(code: 1000) == .ignore)
        #expect(h.close(code: 1000, reason: "bye") == .ignore)
    }

    @Test func closeWithoutCodeIsAnsweredWith1000() {
        var h = CloseHandshake()
        #expect(h.receivedClose(code: nil) == .sendClose(code: 1000, reason: "", thenCloseTransport: true))
    }

    @Test func serverInitiatedClose() {
        var h = CloseHandshake()
        #expect(h.close(code: 1001, reason: "going away") == .sendClose(code: 1001, reason: "going away", thenCloseTransport: false))
        #expect(h.state == .closeSent)
        #expect(h.close(code: 1000, reason: "again") == .ignore)
        #expect(h.receivedMessage() == .ignore)
        #expect(h.receivedPing() == .ignore)
        #expect(h.receivedClose(code: 1000) == .closeTransport)
        #expect(h.state == .closed)
    }

    @Test func failureSendsCloseCodeThenCloses() {
        var h = CloseHandshake()
        #expect(h.failed(.invalidUTF8) == .sendClose(code: 1007, reason: ProtocolError.invalidUTF8.reason, thenCloseTransport: true))
        #expect(h.state == .closed)
        #expect(h.failed(.invalidUTF8) == .ignore)

        var tooBig = CloseHandshake()
        guard case .sendClose(1009, _, true) = tooBig.failed(.messageTooLarge) else {
            Issue.record("expected 1009")
            return
        }
    }

    @Test func failureAfterCloseSentOnlyClosesTransport() {
        var h = CloseHandshake()
        _ = h.close(code: 1000, reason: "")
        #expect(h.failed(.unmaskedFrame) == .closeTransport)
        #expect(h.state == .closed)
    }

    @Test func failureReasonsFitACloseFrame() {
        let all: [ProtocolError] = [.malformedRequestLine, .malformedHeader, .headTooLarge, .methodNotAllowed,
            .unsupportedHTTPVersion, .notAWebSocketUpgrade, .missingOrInvalidKey, .unsupportedVersion,
            .unmaskedFrame, .reservedBitsSet, .unknownOpcode(255), .fragmentedControlFrame, .controlFrameTooLarge,
            .unexpectedContinuation, .expectedContinuation, .frameLengthTooLarge, .messageTooLarge, .invalidUTF8,
            .invalidClosePayload, .missingOrRepeatedHost]
        for e in all {
            #expect(FrameEncoder.closePayload(code: e.closeCode, reason: e.reason).count == 2 + e.reason.utf8.count)
        }
    }
}

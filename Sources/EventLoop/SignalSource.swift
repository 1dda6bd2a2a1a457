import CNetShim
import Glibc

/// Delivers Unix signals as loop events through a signalfd, so signal
/// handling runs on the loop thread like everything else (no async-signal-safety traps).
public final class SignalSource: IOHandler {
    private let fd: Int32
    private let onSignal: (Int32) -> Void

    /// Blocks `signals` for the process and reports each one to `onSignal` on the loop.
    public init(signals: [Int32], loop: EventLoop, onSignal: @escaping (Int32) -> Void) throws {
        let fd = signals.withUnsafeBufferPointer { lsnet_signalfd($0.baseAddress, Int32($0.count)) }
        guard fd >= 0 else { throw SystemError("signalfd", errno: -fd) }
        self.fd = fd
        self.onSignal = onSignal
        try loop.register(fd: fd, interest: .readable, handler: self)
    }

    public func handleReadiness(_ readiness: IOReadiness) {
        while true {
            let signal = lsnet_signalfd_read(fd)
            if signal < 0 { return }
            onSignal(Int32(signal))
        }
    }
}

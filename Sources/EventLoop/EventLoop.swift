import CNetShim
import Glibc

/// Readiness a handler asks to be woken for.
public struct IOInterest: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Data (or end of stream, or an error) can be read.
    public static let readable = IOInterest(rawValue: UInt32(LSNET_READABLE))
    /// The socket's send buffer has room again.
    public static let writable = IOInterest(rawValue: UInt32(LSNET_WRITABLE))
}

/// Readiness the kernel reported for one descriptor.
public struct IOReadiness: Sendable {
    /// The raw epoll mask.
    public let mask: UInt32
    /// Readable, or the peer hung up, or an error is pending: in each case a read tells which.
    public var isReadable: Bool { mask & UInt32(LSNET_READABLE | LSNET_HANGUP | LSNET_ERROR | LSNET_RDHANGUP) != 0 }
    /// Writable, or an error is pending (the next write reports it).
    public var isWritable: Bool { mask & UInt32(LSNET_WRITABLE | LSNET_ERROR) != 0 }
}

/// Something registered with the loop for one file descriptor.
public protocol IOHandler: AnyObject {
    /// Called on the loop thread when the descriptor is ready.
    func handleReadiness(_ readiness: IOReadiness)
}

/// An identifier for a scheduled timer, to cancel it.
public struct TimerID: Hashable, Sendable {
    fileprivate let value: UInt64
}

/// The failures of this module's system calls, each with the errno that caused it.
public struct SystemError: Error, CustomStringConvertible {
    /// What was being attempted.
    public let operation: String
    /// The errno value (positive).
    public let errno: Int32
    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }
    public var description: String { "\(operation): \(String(cString: lsnet_strerror(errno)))" }
}

/// A single-threaded epoll loop. Everything the broker does happens on the
/// thread that calls `run()`: handlers, timers and the end-of-iteration hook,
/// so no state needs a lock. Level-triggered: a handler that leaves data
/// unread is woken again on the next turn, which keeps one busy peer from
/// starving the others.
public final class EventLoop {
    private let epollFD: Int32
    // Indexed by fd: descriptors are small dense integers, so this beats a dictionary on the hot path.
    private var handlers: [IOHandler?] = []
    private var interests: [UInt32] = []
    private var events: UnsafeMutablePointer<lsnet_event>
    private static let maxEventsPerWait: Int32 = 256
    private var timers: [(deadline: UInt64, id: UInt64, action: () -> Void)] = []
    private var nextTimerID: UInt64 = 1
    private var running = false
    /// Monotonic seconds read once when the current batch of events arrived.
    /// Handlers use it for timestamps instead of reading the clock per event.
    public private(set) var iterationTime = monotonicSeconds()
    private var waker: Waker?

    /// Called once after every batch of readiness events and due timers. The
    /// broker flushes its write queues here, so several frames queued for the
    /// same peer during one turn leave in one system call.
    public var afterIteration: (() -> Void)?

    /// Creates the epoll instance.
    public init() throws {
        let fd = lsnet_epoll_create()
        guard fd >= 0 else { throw SystemError("epoll_create1", errno: -fd) }
        epollFD = fd
        events = .allocate(capacity: Int(Self.maxEventsPerWait))
        let waker = try Waker()
        try register(fd: waker.fd, interest: .readable, handler: waker)
        self.waker = waker
    }

    deinit {
        events.deallocate()
        _ = lsnet_close(epollFD)
    }

    /// Registers `handler` for `fd` with the given interest.
    public func register(fd: Int32, interest: IOInterest, handler: IOHandler) throws {
        let index = Int(fd)
        if index >= handlers.count {
            let newCount = max(index + 1, handlers.count * 2, 64)
            handlers.append(contentsOf: repeatElement(nil, count: newCount - handlers.count))
            interests.append(contentsOf: repeatElement(0, count: newCount - interests.count))
        }
        let mask = interest.rawValue | UInt32(LSNET_RDHANGUP)
        let rc = lsnet_epoll_ctl(epollFD, 1, fd, mask, UInt64(fd))
        guard rc == 0 else { throw SystemError("epoll_ctl(ADD)", errno: -rc) }
        handlers[index] = handler
        interests[index] = mask
    }

    /// Changes what `fd` is watched for; a no-op when nothing changes.
    public func modify(fd: Int32, interest: IOInterest) {
        let index = Int(fd)
        guard index < handlers.count, handlers[index] != nil else { return }
        let mask = interest.rawValue | UInt32(LSNET_RDHANGUP)
        guard interests[index] != mask else { return }
        if lsnet_epoll_ctl(epollFD, 3, fd, mask, UInt64(fd)) == 0 { interests[index] = mask }
    }

    /// Stops watching `fd`. Call before closing it.
    public func unregister(fd: Int32) {
        let index = Int(fd)
        guard index < handlers.count, handlers[index] != nil else { return }
        _ = lsnet_epoll_ctl(epollFD, 2, fd, 0, 0)
        handlers[index] = nil
        interests[index] = 0
    }

    /// Runs `action` on the loop after `seconds`. Timers are few (debounces,
    /// periodic sweeps), so a sorted array is enough.
    @discardableResult
    public func schedule(after seconds: Double, _ action: @escaping () -> Void) -> TimerID {
        let deadline = lsnet_monotonic_ns() + UInt64(max(0, seconds) * 1e9)
        let id = nextTimerID
        nextTimerID += 1
        let position = timers.firstIndex { $0.deadline > deadline } ?? timers.endIndex
        timers.insert((deadline, id, action), at: position)
        return TimerID(value: id)
    }

    /// Cancels a timer that has not fired yet.
    public func cancel(_ timer: TimerID) {
        timers.removeAll { $0.id == timer.value }
    }

    /// Runs `action` on the loop thread soon. The one method that may be
    /// called from any thread: it queues the action and wakes the loop through an eventfd.
    public func execute(_ action: @escaping () -> Void) {
        waker?.submit(action)
    }

    /// Serves events until `stop()` is called.
    public func run() {
        running = true
        while running {
            let count = lsnet_epoll_wait(epollFD, events, Self.maxEventsPerWait, nextTimeoutMilliseconds())
            iterationTime = monotonicSeconds()
            if count > 0 {
                for i in 0..<Int(count) {
                    let event = events[i]
                    let index = Int(event.token)
                    // A handler earlier in this batch may have closed this fd.
                    guard index < handlers.count, let handler = handlers[index] else { continue }
                    handler.handleReadiness(IOReadiness(mask: event.events))
                }
            }
            fireDueTimers()
            afterIteration?()
        }
    }

    /// Makes `run()` return after the current iteration.
    public func stop() { running = false }

    private func nextTimeoutMilliseconds() -> Int32 {
        guard let first = timers.first else { return -1 }
        let now = lsnet_monotonic_ns()
        if first.deadline <= now { return 0 }
        // Round up so a timer never fires a little early and spins.
        return Int32(min((first.deadline - now + 999_999) / 1_000_000, 60_000))
    }

    private func fireDueTimers() {
        guard !timers.isEmpty else { return }
        let now = lsnet_monotonic_ns()
        while let first = timers.first, first.deadline <= now {
            timers.removeFirst()
            first.action()
        }
    }
}

/// Monotonic time in seconds, for deadlines.
public func monotonicSeconds() -> Double { Double(lsnet_monotonic_ns()) / 1e9 }

/// Carries actions from other threads to the loop thread.
private final class Waker: IOHandler {
    let fd: Int32
    private let lock = PthreadMutex()
    private var pending: [() -> Void] = []

    init() throws {
        let fd = lsnet_eventfd()
        guard fd >= 0 else { throw SystemError("eventfd", errno: -fd) }
        self.fd = fd
    }

    func submit(_ action: @escaping () -> Void) {
        lock.withLock { pending.append(action) }
        lsnet_eventfd_signal(fd)
    }

    func handleReadiness(_ readiness: IOReadiness) {
        lsnet_eventfd_drain(fd)
        let actions = lock.withLock { () -> [() -> Void] in
            let taken = pending
            pending.removeAll()
            return taken
        }
        for action in actions { action() }
    }
}

/// A pthread mutex, so this module needs no Foundation.
private final class PthreadMutex {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func withLock<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }
}

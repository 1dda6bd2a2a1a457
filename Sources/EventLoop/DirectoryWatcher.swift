import CNetShim

/// Watches one directory with inotify and reports changes to files with a
/// given suffix. The caller debounces: editors save in several steps
/// (truncate, write, rename), and each step is an event.
public final class DirectoryWatcher: IOHandler {
    private let fd: Int32
    private let suffix: String
    private let onChange: () -> Void

    /// Starts watching `directory` for created, written, moved-in or deleted files ending in `suffix`.
    public init(directory: String, suffix: String, loop: EventLoop, onChange: @escaping () -> Void) throws {
        let fd = lsnet_inotify_init()
        guard fd >= 0 else { throw SystemError("inotify_init1", errno: -fd) }
        let watch = lsnet_inotify_watch_dir(fd, directory)
        guard watch >= 0 else {
            _ = lsnet_close(fd)
            throw SystemError("inotify_add_watch(\(directory))", errno: -watch)
        }
        self.fd = fd
        self.suffix = suffix
        self.onChange = onChange
        try loop.register(fd: fd, interest: .readable, handler: self)
    }

    public func handleReadiness(_ readiness: IOReadiness) {
        if lsnet_inotify_drain(fd, suffix) > 0 { onChange() }
    }
}

#ifndef CNETSHIM_H
#define CNETSHIM_H
/*
 * The kernel interfaces the event loop uses, in shapes Swift imports cleanly.
 * epoll_event is a packed struct on x86-64 and several of these calls take
 * macros or variadic arguments, so they are wrapped here. Prefix: lsnet_.
 */
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/** One readiness report: the epoll event mask and the token registered with the fd. */
typedef struct {
    uint32_t events;
    uint64_t token;
} lsnet_event;

enum {
    LSNET_READABLE = 0x001,  /* EPOLLIN */
    LSNET_WRITABLE = 0x004,  /* EPOLLOUT */
    LSNET_ERROR    = 0x008,  /* EPOLLERR */
    LSNET_HANGUP   = 0x010,  /* EPOLLHUP */
    LSNET_RDHANGUP = 0x2000, /* EPOLLRDHUP */
};

/** epoll_create1(EPOLL_CLOEXEC). */
int lsnet_epoll_create(void);
/** op: 1 add, 2 delete, 3 modify (EPOLL_CTL_*). Returns 0 or -errno. */
int lsnet_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token);
/** Fills up to `max` events; returns their count, 0 on timeout or EINTR, -errno on error. */
int lsnet_epoll_wait(int epfd, lsnet_event *events, int max, int timeout_ms);

/**
 * Creates a non-blocking listening TCP socket bound to host:port (port 0 picks
 * a free one). Returns the fd and stores the bound port in *bound_port, or
 * returns -1 with a message in errbuf.
 */
int lsnet_listen_tcp(const char *host, int port, int backlog, int *bound_port, char *errbuf, size_t errlen);

/**
 * accept4 with SOCK_NONBLOCK|SOCK_CLOEXEC and TCP_NODELAY set. Writes the
 * peer's address as text (no port) into addr and its port into *port.
 * Returns the fd, or -errno (-EAGAIN when the backlog is empty).
 */
int lsnet_accept(int listen_fd, char *addr, size_t addrlen, int *port);

/** read(); returns bytes, 0 at end of stream, or -errno. */
ssize_t lsnet_read(int fd, void *buf, size_t len);
/** writev() without SIGPIPE; returns bytes or -errno. */
ssize_t lsnet_writev(int fd, const struct iovec *iov, int iovcnt);
/** write() without SIGPIPE; returns bytes or -errno. */
ssize_t lsnet_write(int fd, const void *buf, size_t len);
/** shutdown(fd, SHUT_WR): our side is done sending; the peer sees end of stream. */
int lsnet_shutdown_write(int fd);
int lsnet_close(int fd);

/** Blocks the given signals for the process and returns a signalfd that reports them. */
int lsnet_signalfd(const int *signals, int count);
/** Reads one pending signal from a signalfd; returns its number, or -1 when none. */
int lsnet_signalfd_read(int fd);

/** inotify_init1(IN_NONBLOCK|IN_CLOEXEC). */
int lsnet_inotify_init(void);
/** Watches a directory for files written, created, moved in or deleted. Returns the watch descriptor or -errno. */
int lsnet_inotify_watch_dir(int fd, const char *path);
/**
 * Drains pending inotify events; returns how many named a file whose name
 * ends with `suffix` (e.g. ".lua"), or -errno.
 */
int lsnet_inotify_drain(int fd, const char *suffix);

/** eventfd(0, EFD_NONBLOCK|EFD_CLOEXEC): a counter other threads bump to wake the loop. */
int lsnet_eventfd(void);
/** Adds one to an eventfd. */
void lsnet_eventfd_signal(int fd);
/** Resets an eventfd to zero. */
void lsnet_eventfd_drain(int fd);

/** Monotonic clock in nanoseconds. */
uint64_t lsnet_monotonic_ns(void);
/** Wall clock in nanoseconds since the epoch. */
uint64_t lsnet_realtime_ns(void);
/** Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit. */
long lsnet_raise_fd_limit(void);
/** Ignores SIGPIPE for the process (writes to a closed peer then fail with EPIPE instead). */
void lsnet_ignore_sigpipe(void);
/** strerror for an errno value. */
const char *lsnet_strerror(int err);

#endif

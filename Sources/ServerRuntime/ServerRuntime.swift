// ServerRuntime: the server's machinery below any protocol. Event loops (one thread and one
// epoll each, tasks from other threads through an eventfd, a timer heap, end-of-turn
// flushes) and the group that starts and stops them, listening sockets and the acceptor, output buffers for non-blocking writes,
// plain threads, the bounded work queue, the one monotonic clock and the wall clock's timestamps.
//
// May import: the C shims (CLinux), Glibc, Synchronization and swift-log. Nothing of the project's.

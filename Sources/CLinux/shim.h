// What Swift's Glibc module does not export: epoll, eventfd, timerfd and libxcrypt.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <crypt.h>
#include <pthread.h>
#include <sys/random.h>

// Declared here because Glibc exports them only under _GNU_SOURCE.
extern int accept4(int fd, struct sockaddr *addr, socklen_t *addr_len, int flags);
extern int pthread_setname_np(pthread_t thread, const char *name);
#include <sys/types.h>
extern pid_t gettid(void);

// ThreadSanitizer's annotations, called only in `make sanitize`'s thread build (-DCHAT_TSAN,
// where the TSan runtime defines them): see ServerRuntime's Locked.
extern void __tsan_acquire(void *addr);
extern void __tsan_release(void *addr);

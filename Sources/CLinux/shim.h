// What Swift's Glibc module does not export: epoll, eventfd, timerfd and libxcrypt.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <crypt.h>

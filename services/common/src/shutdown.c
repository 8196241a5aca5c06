/* Graceful shutdown: a stop flag plus a self-pipe that signal handlers write to wake poll(2). */
#include "keel/shutdown.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "keel/clock.h"

static atomic_bool shutdown_flag = false;
/* The pipe's ends; -1 until created. Readable end never drained, so once a byte is written
 * it stays readable for every poller. */
static atomic_int shutdown_read_fd = -1;
static atomic_int shutdown_write_fd = -1;
static pthread_once_t shutdown_once = PTHREAD_ONCE_INIT;

static void shutdown_poke(void)
{
    int fd = atomic_load(&shutdown_write_fd);
    if (fd >= 0) {
        char byte = 1;
        /* Non-blocking: a full pipe is already readable, so a failed write loses nothing. */
        ssize_t n = write(fd, &byte, 1);
        (void)n;
    }
}

static void shutdown_create_pipe(void)
{
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        return;
    }
    atomic_store(&shutdown_read_fd, fds[0]);
    atomic_store(&shutdown_write_fd, fds[1]);
    /* A request made before the pipe existed could not write to it; write for it now.
     * The store above and this load are sequentially consistent with the request's store
     * and load, so at least one side writes the byte. */
    if (atomic_load(&shutdown_flag)) {
        shutdown_poke();
    }
}

static void shutdown_ensure_pipe(void)
{
    pthread_once(&shutdown_once, shutdown_create_pipe);
}

static void shutdown_on_signal(int sig)
{
    (void)sig;
    int saved_errno = errno;
    keel_shutdown_request();
    errno = saved_errno;
}

void keel_shutdown_install(void)
{
    shutdown_ensure_pipe();

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = shutdown_on_signal;
    sigemptyset(&sa.sa_mask);
    /* Restart interrupted system calls inside libraries (libpq, librdkafka, libcurl); keel's
     * own waits poll the pipe, so they wake anyway. */
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    /* A peer closing a socket must surface as EPIPE, not kill the process. */
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, NULL);
}

bool keel_shutdown_requested(void)
{
    return atomic_load(&shutdown_flag);
}

void keel_shutdown_request(void)
{
    /* Only async-signal-safe operations: lock-free atomics and write(2). */
    atomic_store(&shutdown_flag, true);
    shutdown_poke();
}

int keel_shutdown_fd(void)
{
    shutdown_ensure_pipe();
    return atomic_load(&shutdown_read_fd);
}

bool keel_shutdown_wait_ms(int64_t ms)
{
    if (keel_shutdown_requested()) {
        return true;
    }
    if (ms <= 0) {
        return false;
    }
    int fd = keel_shutdown_fd();
    int64_t deadline = keel_clock_monotonic_ms() + ms;
    for (;;) {
        int64_t left = deadline - keel_clock_monotonic_ms();
        if (left <= 0) {
            break;
        }
        if (fd < 0) {
            /* No pipe (pipe2 failed): fall back to short sleeps that still notice the flag. */
            keel_clock_sleep_ms(left < 50 ? left : 50);
        } else {
            struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
            int timeout = left > 60000 ? 60000 : (int)left;
            int rc = poll(&pfd, 1, timeout);
            if (rc < 0 && errno != EINTR) {
                keel_clock_sleep_ms(left < 50 ? left : 50);
            }
        }
        if (keel_shutdown_requested()) {
            return true;
        }
    }
    return keel_shutdown_requested();
}

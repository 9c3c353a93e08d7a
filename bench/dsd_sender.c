/* DogStatsD load generator for bench_dogstatsd.py: sends `count` copies of one datagram to a
 * loopback UDP port at `rate` datagrams/s (0 = as fast as it can), in sendmmsg() batches of up to
 * 64, paced every `batch` datagrams against the monotonic clock. Prints one JSON line:
 * {"sent": N, "send_errors": N, "seconds": S, "cpu_s": S} (cpu_s: its own user + system time, which
 * on loopback includes the kernel delivering each datagram into the receiver's socket).
 *
 * Why C: a Python sender spends ~2-5 us of CPU per sendto() and shares a busy 2-core machine with
 * the receiver; it could not offer more than the receivers lose at, so it could not show where
 * a receiver's loss point is. One sendmmsg() call hands the kernel 64 datagrams.
 *
 * Built at bench time with the machine's cc (bench_dogstatsd.py), never shipped as a binary.
 * usage: dsd_sender <ipv4> <port> <rate> <count> <datagram> [variants]
 * variants K > 1: datagram i carries the tag `v:<i mod K>` too (appended to its tags), so no two
 * consecutive datagrams of one sender are identical (a receiver cannot merge repeats).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 64

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: %s <ipv4> <port> <rate/s, 0 = unpaced> <count> <datagram> [variants]\n",
                argv[0]);
        return 2;
    }
    const char *host = argv[1];
    long port = strtol(argv[2], NULL, 10);
    double rate = strtod(argv[3], NULL);
    long count = strtol(argv[4], NULL, 10);
    const char *payload = argv[5];
    size_t len = strlen(payload);
    long variants = argc == 7 ? strtol(argv[6], NULL, 10) : 1;
    if (variants < 1 || variants > 100000 || len > 1000) {
        fprintf(stderr, "bad arguments: variants must be 1..100000 and the datagram at most 1000 bytes\n");
        return 2;
    }
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons((unsigned short)port);
    if (port <= 0 || port > 65535 || count < 0 || rate < 0 || inet_pton(AF_INET, host, &to.sin_addr) != 1) {
        fprintf(stderr, "bad arguments: host %s port %s rate %s count %s\n", argv[1], argv[2], argv[3], argv[4]);
        return 2;
    }
    /* Only loopback: the bench never sends anywhere else. */
    if ((ntohl(to.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "refusing %s: the bench sends to loopback only\n", host);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
        perror("socket/connect");
        return 1;
    }
    int sndbuf = 4 * 1024 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);

    /* Pace in steps of ~0.5 ms worth of datagrams (at least 1, at most MAX_BATCH). */
    long batch = rate > 0 ? (long)(rate / 2000.0) : MAX_BATCH;
    if (batch < 1) batch = 1;
    if (batch > MAX_BATCH) batch = MAX_BATCH;

    /* Every variant built once: `<datagram>,v:<k>` (the datagram ends in its tags). */
    char *bodies = malloc((size_t)variants * (len + 16));
    size_t *lens = malloc((size_t)variants * sizeof *lens);
    if (!bodies || !lens) {
        perror("malloc");
        return 1;
    }
    for (long k = 0; k < variants; k++) {
        char *b = bodies + (size_t)k * (len + 16);
        lens[k] = variants == 1 ? (size_t)snprintf(b, len + 16, "%s", payload)
                                : (size_t)snprintf(b, len + 16, "%s,v:%ld", payload, k);
    }
    struct iovec iov[MAX_BATCH];
    struct mmsghdr msgs[MAX_BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < MAX_BATCH; i++) {
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    long sent = 0, errors = 0, attempted = 0;
    double began = now_s();
    while (attempted < count) {
        long n = count - attempted < batch ? count - attempted : batch;
        for (long i = 0; i < n; i++) {
            long k = (attempted + i) % variants;
            iov[i].iov_base = bodies + (size_t)k * (len + 16);
            iov[i].iov_len = lens[k];
        }
        long done = 0;
        while (done < n) {
            int r = sendmmsg(fd, msgs + done, (unsigned int)(n - done), 0);
            if (r < 0) {
                if (errno == EINTR) continue;
                errors++; /* e.g. ECONNREFUSED from an earlier datagram: count it, skip one */
                done++;
                continue;
            }
            done += r;
            sent += r;
        }
        attempted += n;
        if (rate > 0) {
            double due = began + (double)attempted / rate;
            double ahead = due - now_s();
            if (ahead > 0.0002) {
                struct timespec ts = {(time_t)ahead, (long)((ahead - (double)(time_t)ahead) * 1e9)};
                nanosleep(&ts, NULL);
            } else {
                while (now_s() < due) { /* spin out the last fraction: nanosleep oversleeps */ }
            }
        }
    }
    double elapsed = now_s() - began;
    close(fd);
    free(bodies);
    free(lens);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6
               + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    printf("{\"sent\": %ld, \"send_errors\": %ld, \"seconds\": %.6f, \"cpu_s\": %.6f}\n",
           sent, errors, elapsed, cpu);
    return 0;
}

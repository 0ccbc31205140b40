/* Load for test/trace and bench/trace.mjs: after a line on stdin, registers and unregisters one
 * io_uring buffer of BYTES (default 4 KiB) RATE times a second for SECONDS, on one ring, then prints
 * how many registrations succeeded, the seconds it took, and the seconds spent inside the register
 * and unregister calls (the cost of a call at this rate, without the spinning between calls).
 * usage: regloop RATE SECONDS [BYTES] */
#define _GNU_SOURCE
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc != 3 && argc != 4) { fprintf(stderr, "usage: regloop RATE SECONDS [BYTES]\n"); return 2; }
  long rate = atol(argv[1]);
  double seconds = atof(argv[2]);
  size_t bytes = argc == 4 ? (size_t)atol(argv[3]) : 4096;
  char line[16];
  if (!fgets(line, sizeof line, stdin)) return 1;
  struct io_uring_params params;
  memset(&params, 0, sizeof params);
  int ring = syscall(__NR_io_uring_setup, 8, &params);
  if (ring < 0) { perror("io_uring_setup"); return 1; }
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) { perror("mmap"); return 1; }
  static struct iovec iov;
  iov.iov_base = p;
  iov.iov_len = bytes;
  long long start = now_ns(), total = (long long)(seconds * rate);
  long ok = 0;
  long long in_calls = 0;
  for (long long i = 0; i < total; i++) {
    long long due = start + i * 1000000000LL / rate;
    long long before;
    while ((before = now_ns()) < due) { /* spin: a sleep would overshoot at this rate */ }
    if (syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS, &iov, 1) == 0) ok++;
    syscall(__NR_io_uring_register, ring, IORING_UNREGISTER_BUFFERS, NULL, 0);
    in_calls += now_ns() - before;
  }
  printf("%ld %.3f %.6f\n", ok, (now_ns() - start) / 1e9, in_calls / 1e9);
  return 0;
}

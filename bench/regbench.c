/* Baseline for `npm run bench`: the same syscalls rdmactl's engine makes to register and release
 * a buffer, timed in C. usage: regbench uring|mlock BYTES ITERATIONS → prints median µs. */
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

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int one(const char *backend, size_t len) {
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return -1;
  if (!strcmp(backend, "mlock")) {
    if (mlock(p, len)) return -1;
    munlock(p, len);
  } else {
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    int ring = syscall(__NR_io_uring_setup, 8, &params);
    if (ring < 0) return -1;
    struct iovec iov = { p, len };
    if (syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS, &iov, 1)) return -1;
    syscall(__NR_io_uring_register, ring, IORING_UNREGISTER_BUFFERS, NULL, 0);
    close(ring);
  }
  munmap(p, len);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: regbench uring|mlock BYTES ITERATIONS\n"); return 2; }
  size_t len = strtoull(argv[2], NULL, 0);
  int n = atoi(argv[3]);
  double *t = calloc(n, sizeof *t);
  for (int i = 0; i < n; i++) {
    double start = now_us();
    if (one(argv[1], len)) { perror("register"); return 1; }
    t[i] = now_us() - start;
  }
  qsort(t, n, sizeof *t, cmp);
  printf("%.1f\n", t[n / 2]);
  return 0;
}

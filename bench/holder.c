/* A process that pins memory the way an RDMA application does, for `bench/ls.mjs`: registers one
 * anonymous buffer as an io_uring fixed buffer (a long-term pin, like ibv_reg_mr), says "ready" on
 * stdout and waits to be killed. usage: holder BYTES */
#define _GNU_SOURCE
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: holder BYTES\n"); return 2; }
  size_t len = strtoull(argv[1], NULL, 0);
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) { perror("mmap"); return 1; }
  struct io_uring_params params;
  memset(&params, 0, sizeof params);
  int ring = syscall(__NR_io_uring_setup, 8, &params);
  if (ring < 0) { perror("io_uring_setup"); return 1; }
  struct iovec iov = { p, len };
  if (syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS, &iov, 1)) { perror("IORING_REGISTER_BUFFERS"); return 1; }
  printf("ready %d\n", ring);
  fflush(stdout);
  for (;;) pause();
}

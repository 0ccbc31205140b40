/* Test helper: holds locked and/or io_uring-pinned memory until stdin closes.
 * usage: pinner MLOCK_BYTES URING_BYTES [dontfork] [wipeonfork] [hugepage]
 * Prints "ready <mlock_addr> <uring_addr> <ring_fd>" once everything is in place. */
#define _GNU_SOURCE
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static void *map_anon(size_t len) {
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) { perror("mmap"); exit(2); }
  memset(p, 1, len);
  return p;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: pinner MLOCK_BYTES URING_BYTES [flags]\n"); return 2; }
  size_t lock_len = strtoull(argv[1], NULL, 0), uring_len = strtoull(argv[2], NULL, 0);
  int dontfork = 0, wipeonfork = 0, hugepage = 0;
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "dontfork")) dontfork = 1;
    else if (!strcmp(argv[i], "wipeonfork")) wipeonfork = 1;
    else if (!strcmp(argv[i], "hugepage")) hugepage = 1;
  }
  void *locked = NULL, *pinned = NULL;
  int ring = -1;
  if (lock_len) {
    locked = map_anon(lock_len);
    if (dontfork && madvise(locked, lock_len, MADV_DONTFORK)) { perror("MADV_DONTFORK"); return 2; }
    if (wipeonfork && madvise(locked, lock_len, MADV_WIPEONFORK)) { perror("MADV_WIPEONFORK"); return 2; }
    if (hugepage && madvise(locked, lock_len, MADV_HUGEPAGE)) { perror("MADV_HUGEPAGE"); return 2; }
    if (mlock(locked, lock_len)) { perror("mlock"); return 3; }
  }
  if (uring_len) {
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    ring = (int)syscall(__NR_io_uring_setup, 4, &params);
    if (ring < 0) { perror("io_uring_setup"); return 4; }
    pinned = map_anon(uring_len);
    /* slot 1 is left sparse so fdinfo shows an empty slot */
    struct iovec iov[2] = { { pinned, uring_len }, { NULL, 0 } };
    if (syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS, iov, 2) < 0) {
      perror("IORING_REGISTER_BUFFERS"); return 5;
    }
  }
  printf("ready %p %p %d\n", locked, pinned, ring);
  fflush(stdout);
  char c;
  while (read(0, &c, 1) > 0) {}
  return 0;
}

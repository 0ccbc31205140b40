/* For test/trace/trace.test.ts: a process whose last thread is not its main thread. After a line on
 * stdin the main thread registers one io_uring buffer of 128 KiB, prints its pid, the ring fd, the
 * worker's tid and the call's result, and 200 ms later (rdmactl reads the iovec from this process
 * within its 50 ms poll, through the leader's /proc/PID/mem, which an exited leader no longer has)
 * exits alone (SYS_exit: the process lives on as a zombie leader and the worker). 300 ms after that
 * the worker ends the process (exit_group) without unregistering, so the buffer is released by the
 * worker's exit. */
#define _GNU_SOURCE
#include <linux/io_uring.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static int go[2];
static volatile pid_t worker_tid;

static void *worker(void *arg) {
  (void)arg;
  worker_tid = (pid_t)syscall(SYS_gettid);
  char byte;
  if (read(go[0], &byte, 1) != 1) syscall(SYS_exit_group, 1);
  struct timespec wait = { 0, 300L * 1000 * 1000 };
  nanosleep(&wait, NULL);
  syscall(SYS_exit_group, 0);
  return NULL;
}

int main(void) {
  struct io_uring_params params;
  memset(&params, 0, sizeof params);
  int ring = (int)syscall(SYS_io_uring_setup, 4, &params);
  if (ring < 0 || pipe(go) != 0) return 1;
  size_t bytes = 128 * 1024;
  void *buffer = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (buffer == MAP_FAILED) return 1;
  struct iovec iov = { buffer, bytes };
  pthread_t thread;
  if (pthread_create(&thread, NULL, worker, NULL) != 0) return 1;
  if (getchar() == EOF) return 1;
  while (worker_tid == 0) usleep(1000);
  long result = syscall(SYS_io_uring_register, ring, IORING_REGISTER_BUFFERS, &iov, 1);
  printf("{\"pid\":%d,\"fd\":%d,\"workerTid\":%d,\"result\":%ld}\n", (int)getpid(), ring, (int)worker_tid, result);
  fflush(stdout);
  struct timespec wait = { 0, 200L * 1000 * 1000 };
  nanosleep(&wait, NULL);
  if (write(go[1], "g", 1) != 1) return 1;
  syscall(SYS_exit, 0); /* this thread only */
  return 0;
}

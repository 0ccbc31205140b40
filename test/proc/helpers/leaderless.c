// A child process whose main thread has exited while another thread runs on (its leader a zombie,
// the process alive), for test/proc/ended.test.ts. The parent prints "child PID", then on each
// stdin line: "kill" sends the child SIGKILL (the whole process ends, unreaped: a zombie leader
// alone), "reap" waits for it. At end of input it kills and reaps the child, so nothing outlives it.
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void *worker(void *arg) {
  (void)arg;
  for (;;) pause();
  return NULL;
}

int main(void) {
  pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, worker, NULL) != 0) _exit(1);
    syscall(SYS_exit, 0); /* this thread only: the worker keeps the process alive */
  }
  printf("child %d\n", (int)child);
  fflush(stdout);
  char line[64];
  int reaped = 0;
  while (fgets(line, sizeof line, stdin)) {
    if (strncmp(line, "kill", 4) == 0) kill(child, SIGKILL);
    if (strncmp(line, "reap", 4) == 0 && !reaped) {
      waitpid(child, NULL, 0);
      reaped = 1;
    }
    printf("done %s", line);
    fflush(stdout);
  }
  if (!reaped) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
  }
  return 0;
}

/* Idle processes for benchmarks, cheaply: forks COUNT children that wait in pause(), says "ready N"
 * on stdout, and when its stdin closes (or on SIGTERM) kills and reaps every child, so no zombie is
 * left for a PID 1 that may not reap orphans. Each child also dies if this parent dies first.
 * usage: idle COUNT */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;
static void on_term(int sig) { (void)sig; stopping = 1; }

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: idle COUNT\n"); return 2; }
  long count = strtol(argv[1], NULL, 10);
  pid_t *pids = calloc(count > 0 ? count : 1, sizeof *pids);
  struct sigaction sa = { .sa_handler = on_term };
  sigaction(SIGTERM, &sa, NULL);
  long started = 0;
  for (; started < count && !stopping; started++) {
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); break; }
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() == 1) _exit(0);
      for (;;) pause();
    }
    pids[started] = pid;
  }
  printf("ready %ld\n", started);
  fflush(stdout);
  char buf[64];
  while (!stopping && read(0, buf, sizeof buf) > 0) {}
  for (long i = 0; i < started; i++) kill(pids[i], SIGKILL);
  for (long i = 0; i < started; i++) waitpid(pids[i], NULL, 0);
  return started == count ? 0 : 1;
}

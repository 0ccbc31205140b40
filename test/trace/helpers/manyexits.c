/* For test/trace/trace.test.ts: N short-lived processes, one after another, each named mlk-I
 * (prctl), each locking one page and exiting at once; their pid and index go to stdout as
 * "PID I" lines. Enough of them push the first ones out of the kernel's comm cache
 * (saved_cmdlines), which trace_pipe consults when a line is read, not when it was recorded.
 * usage: manyexits N */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static char page[4096] __attribute__((aligned(4096)));

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: manyexits N\n"); return 2; }
  int n = atoi(argv[1]);
  for (int i = 0; i < n; i++) {
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 1; }
    if (pid == 0) {
      char name[16];
      snprintf(name, sizeof name, "mlk-%d", i);
      prctl(PR_SET_NAME, name);
      if (mlock(page, sizeof page) != 0) _exit(1);
      _exit(0);
    }
    printf("%d %d\n", (int)pid, i);
    if (waitpid(pid, NULL, 0) != pid) { perror("waitpid"); return 1; }
  }
  return 0;
}

"""The sandbox launcher's C source, compiled once into the cache by `Harness`.

Kept as a Python string so that it ships inside the package like any module.
"""

LAUNCHER_C = r"""/* genlab SPoC sandbox launcher: run one untrusted candidate binary with limits.
 *
 * usage: launcher CPU_S AS_BYTES FSIZE_BYTES NPROC UID BINARY
 * stdin/stdout/stderr and the working directory are set by the caller, which also puts the
 * launcher in a new session (process group) and kills that group on a wall-clock timeout.
 *
 * Layers: (1) new PID and network namespaces where the kernel allows it (as root, or through a
 * user namespace otherwise); the first child is PID 1 of that namespace, so when it exits every
 * process the candidate left behind is killed by the kernel; (2) as root, the candidate runs as
 * UID (default 65534, "nobody") so RLIMIT_NPROC is enforced; (3) rlimits on CPU, address space,
 * file size and processes. Exit status: the candidate's, or 128 + signal when it was killed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static int status_code(int st) {
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return 125;
}

static void limit(int resource, rlim_t value) {
    struct rlimit rl = {value, value};
    setrlimit(resource, &rl);
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s CPU_S AS_BYTES FSIZE_BYTES NPROC UID BINARY\n", argv[0]);
        return 125;
    }
    rlim_t cpu = strtoull(argv[1], NULL, 10), as = strtoull(argv[2], NULL, 10);
    rlim_t fsize = strtoull(argv[3], NULL, 10), nproc = strtoull(argv[4], NULL, 10);
    uid_t uid = (uid_t)strtoul(argv[5], NULL, 10);
    int root = geteuid() == 0;
    /* Namespaces: failure is not fatal (old kernels, containers without the capability). */
    if (root) {
        unshare(CLONE_NEWPID | CLONE_NEWNET);
    } else if (unshare(CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET) != 0) {
        unshare(CLONE_NEWPID);
    }
    pid_t init = fork();
    if (init < 0) return 125;
    if (init == 0) {
        /* PID 1 of the new namespace (when unshare worked): start the candidate, wait for it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        pid_t child = fork();
        if (child < 0) _exit(125);
        if (child == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            limit(RLIMIT_CPU, cpu);
            limit(RLIMIT_AS, as);
            limit(RLIMIT_FSIZE, fsize);
            limit(RLIMIT_CORE, 0);
            limit(RLIMIT_NPROC, nproc);
            if (root) {
                if (setgroups(0, NULL) != 0 || setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0)
                    _exit(126);
            }
            char *args[] = {argv[6], NULL};
            char *env[] = {"PATH=/usr/bin:/bin", "LC_ALL=C", NULL};
            execve(argv[6], args, env);
            _exit(127);
        }
        int st = 0, code = 125;
        for (;;) {  /* reap everything; remember the candidate's status */
            pid_t p = wait(&st);
            if (p == child) { code = status_code(st); break; }
            if (p < 0 && errno != EINTR) break;
        }
        _exit(code);
    }
    int st = 0;
    while (waitpid(init, &st, 0) < 0 && errno == EINTR) {}
    return status_code(st);
}
"""

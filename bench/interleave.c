/*
 * interleave: times a few commands the way bench/credential.sh needs.
 *
 *   usage: interleave SPEC WARMUP ROUNDS
 *
 * Each round runs every row of SPEC once, in a fresh random order, so a
 * machine whose speed drifts over minutes slows every row alike (running
 * all of row 1, then all of row 2, ... turns the drift into a difference
 * between rows). The first WARMUP rounds are not reported.
 *
 * SPEC has one directive per line; a value is the rest of the line, taken
 * as is (spaces included, no quoting):
 *
 *   row NAME         starts a row
 *   stdin PATH       the row's standard input (default /dev/null)
 *   env NAME=VALUE   added to the runner's own environment (or replacing
 *                    the runner's NAME) for this row's runs
 *   arg WORD         the next argv element; the first one is the program,
 *                    an absolute path (no PATH search)
 *
 * Blank lines and lines starting with '#' are ignored.
 *
 * Output, on stdout: one line per timed run, ROW<TAB>ROUND<TAB>NANOSECONDS,
 * ROW counting the rows of SPEC from 0 and ROUND the timed rounds from 0.
 * A run is timed from just before fork() to just after waitpid(). The child
 * gets stdin from the row's file, stdout and stderr on /dev/null, and is
 * execve'd directly (no shell, no wrapper).
 *
 * Every run must end with the wait status the row's first run ended with
 * (some rows fail on purpose); if one does not, interleave stops with exit
 * status 1 and names the row. A first run that could not exec also stops it.
 *
 * The order is shuffled with a splitmix64 generator seeded from SEED in the
 * environment, or else from the clock and the process id; the seed is
 * printed on stderr so a run can be repeated. SEED itself is not passed on
 * to the commands.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct row {
    char *name;
    char *input;      /* stdin path */
    char **env;       /* NULL-terminated */
    size_t nenv;
    char **argv;      /* NULL-terminated */
    size_t nargv;
    int input_fd;
    int status;       /* the first run's wait status */
    int have_status;
};

static void die(const char *fmt, ...) {
    va_list ap;
    fputs("interleave: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n);
    if (!p) die("out of memory");
    return p;
}

static char *xstrdup(const char *s) {
    char *d = strdup(s);
    if (!d) die("out of memory");
    return d;
}

/* Appends s to the NULL-terminated vector *v of *n elements. */
static void push(char ***v, size_t *n, char *s) {
    *v = xrealloc(*v, (*n + 2) * sizeof **v);
    (*v)[(*n)++] = s;
    (*v)[*n] = NULL;
}

/* Sets NAME=VALUE in the row's environment, replacing an earlier NAME. */
static void set_env(struct row *r, char *assignment) {
    char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment) die("row '%s': env wants NAME=VALUE, got '%s'", r->name, assignment);
    size_t len = (size_t)(eq - assignment) + 1;
    for (size_t i = 0; i < r->nenv; i++) {
        if (strncmp(r->env[i], assignment, len) == 0) {
            r->env[i] = assignment;
            return;
        }
    }
    push(&r->env, &r->nenv, assignment);
}

static struct row *parse_spec(const char *path, size_t *nrows) {
    FILE *f = fopen(path, "r");
    if (!f) die("%s: %s", path, strerror(errno));
    struct row *rows = NULL;
    size_t n = 0, cap = 0, lineno = 0;
    char *line = NULL;
    size_t linecap = 0;
    ssize_t len;
    while ((len = getline(&line, &linecap, f)) >= 0) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
        if (len == 0 || line[0] == '#') continue;
        char *sp = strchr(line, ' ');
        const char *value = sp ? sp + 1 : "";
        if (sp) *sp = '\0';
        if (strcmp(line, "row") == 0) {
            if (!*value) die("%s:%zu: a row needs a name", path, lineno);
            if (n == cap) rows = xrealloc(rows, (cap = cap ? 2 * cap : 8) * sizeof *rows);
            struct row *r = &rows[n++];
            memset(r, 0, sizeof *r);
            r->name = xstrdup(value);
            r->input = "/dev/null";
            r->env = xrealloc(NULL, sizeof *r->env);
            r->env[0] = NULL;
            for (char **e = environ; *e; e++) push(&r->env, &r->nenv, *e);
        } else if (n == 0) {
            die("%s:%zu: '%s' before the first 'row'", path, lineno, line);
        } else if (strcmp(line, "stdin") == 0) {
            rows[n - 1].input = xstrdup(value);
        } else if (strcmp(line, "env") == 0) {
            set_env(&rows[n - 1], xstrdup(value));
        } else if (strcmp(line, "arg") == 0) {
            push(&rows[n - 1].argv, &rows[n - 1].nargv, xstrdup(value));
        } else {
            die("%s:%zu: unknown directive '%s'", path, lineno, line);
        }
    }
    if (ferror(f)) die("%s: %s", path, strerror(errno));
    free(line);
    fclose(f);
    if (n == 0) die("%s: no rows", path);
    for (size_t i = 0; i < n; i++) {
        struct row *r = &rows[i];
        if (r->nargv == 0) die("row '%s': no program", r->name);
        if (r->argv[0][0] != '/') die("row '%s': the program must be an absolute path: %s", r->name, r->argv[0]);
        if (access(r->argv[0], X_OK) != 0) die("row '%s': %s: %s", r->name, r->argv[0], strerror(errno));
        r->input_fd = open(r->input, O_RDONLY | O_CLOEXEC);
        if (r->input_fd < 0) die("row '%s': stdin %s: %s", r->name, r->input, strerror(errno));
    }
    *nrows = n;
    return rows;
}

static uint64_t rng_state;

static uint64_t rng_next(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void shuffle(size_t *order, size_t n) { /* Fisher-Yates */
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(rng_next() % (i + 1));
        size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

static void describe(int status, char *buf, size_t len) {
    if (WIFEXITED(status))
        snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "wait status 0x%x", (unsigned)status);
}

static int devnull_fd, stderr_fd;

/* Runs the row once; returns the time from fork to reaped, in ns. */
static uint64_t run_once(struct row *r, int *status) {
    struct timespec t0, t1;
    if (lseek(r->input_fd, 0, SEEK_SET) < 0 && errno != ESPIPE)
        die("row '%s': rewinding %s: %s", r->name, r->input, strerror(errno));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
        if (dup2(r->input_fd, 0) < 0 || dup2(devnull_fd, 1) < 0 || dup2(devnull_fd, 2) < 0) _exit(127);
        execve(r->argv[0], r->argv, r->env);
        dprintf(stderr_fd, "interleave: row '%s': exec %s: %s\n", r->name, r->argv[0], strerror(errno));
        _exit(127);
    }
    while (waitpid(pid, status, 0) < 0)
        if (errno != EINTR) die("waitpid: %s", strerror(errno));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u + (uint64_t)(t1.tv_nsec - t0.tv_nsec);
}

static long parse_count(const char *s, const char *what) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0) die("%s must be a non-negative integer, not '%s'", what, s);
    return v;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fputs("usage: interleave SPEC WARMUP ROUNDS   (see the comment at the top of interleave.c)\n", stderr);
        return 2;
    }
    long warmup = parse_count(argv[2], "WARMUP");
    long rounds = parse_count(argv[3], "ROUNDS");
    if (rounds < 1) die("ROUNDS must be at least 1");

    const char *seed_env = getenv("SEED");
    uint64_t seed;
    if (seed_env && *seed_env) {
        char *end;
        errno = 0;
        seed = strtoull(seed_env, &end, 10);
        if (errno || *end) die("SEED must be a decimal number, not '%s'", seed_env);
    } else {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        seed = ((uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec) ^ ((uint64_t)getpid() << 32);
        seed &= (1ULL << 53) - 1; /* exact in a JSON number / Python float */
    }
    unsetenv("SEED");
    rng_state = seed;

    size_t nrows;
    struct row *rows = parse_spec(argv[1], &nrows);
    devnull_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull_fd < 0) die("/dev/null: %s", strerror(errno));
    stderr_fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
    if (stderr_fd < 0) die("dup stderr: %s", strerror(errno));

    fprintf(stderr, "interleave: seed %" PRIu64 "; %zu rows; %ld warmup + %ld rounds, each row once per round in random order\n",
            seed, nrows, warmup, rounds);

    size_t *order = xrealloc(NULL, nrows * sizeof *order);
    for (size_t i = 0; i < nrows; i++) order[i] = i;
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long round = -warmup; round < rounds; round++) {
        shuffle(order, nrows);
        for (size_t k = 0; k < nrows; k++) {
            struct row *r = &rows[order[k]];
            int status;
            uint64_t ns = run_once(r, &status);
            char got[64], want[64];
            if (!r->have_status) {
                if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
                    die("row '%s': exit status 127 on its first run: it could not be executed", r->name);
                r->status = status;
                r->have_status = 1;
            } else if (status != r->status) {
                describe(status, got, sizeof got);
                describe(r->status, want, sizeof want);
                die("row '%s': a run ended with %s, its first run with %s (%s round %ld)", r->name, got, want,
                    round < 0 ? "warmup" : "timed", round < 0 ? round + warmup : round);
            }
            if (round >= 0) printf("%zu\t%ld\t%" PRIu64 "\n", order[k], round, ns);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    if (fflush(stdout) != 0 || ferror(stdout)) die("writing the samples: %s", strerror(errno));
    fprintf(stderr, "interleave: done in %.1f s\n",
            (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9);
    return 0;
}

/*
 * git-credential-floor: the least a credential helper can do, as a
 * reference row for bench/credential.sh.
 *
 *   usage: git-credential-floor ANSWER-FILE get
 *
 * For `get` it reads git's request up to the blank line that ends it and
 * copies ANSWER-FILE (a ready `username=...` / `password=...` answer) to
 * stdout; anything else is acknowledged with no output. It parses nothing
 * and looks nothing up, so a row with it shows what this machine charges
 * for starting one more process in the chain: no helper, keygate included,
 * can be faster.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static int drain_request(void)
{
    /* git writes the whole request before it reads the answer; reading it
     * byte by byte stops exactly at the blank line, like a real helper. */
    char c, previous = '\n';
    for (;;) {
        ssize_t n = read(0, &c, 1);
        if (n < 0)
            return -1;
        if (n == 0 || (c == '\n' && previous == '\n'))
            return 0;
        previous = c;
    }
}

int main(int argc, char **argv)
{
    char buffer[8192];
    ssize_t n;
    int fd;

    if (argc != 3)
        return 2;
    if (drain_request() != 0)
        return 1;
    if (strcmp(argv[2], "get") != 0)
        return 0;
    fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1;
    while ((n = read(fd, buffer, sizeof buffer)) > 0)
        if (write(1, buffer, (size_t)n) != n)
            return 1;
    return n < 0 ? 1 : 0;
}

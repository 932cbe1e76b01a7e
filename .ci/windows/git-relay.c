/* git.exe for Windows programs under Wine: runs the Linux git.
 *
 * Wine starts a Unix program for a Windows one but hands back no process
 * handle, so neither its exit status nor output through the caller's pipes
 * reaches the caller. This relay writes a shell script that runs git with
 * its arguments (X:\ paths turned into Unix paths), its output and status
 * going to files, starts /bin/sh on it, waits for the status file and
 * relays all three. Its directory is compiled in (RELAY_DIR, a Unix path
 * without spaces). Test tooling only; never shipped. */
#include <windows.h>
#include <fcntl.h>
#include <io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef char *(CDECL *unix_name_fn)(LPCWSTR);

static unix_name_fn unix_name;

/* A drive path as its Unix path, else NULL. */
static char *to_unix(const char *arg)
{
    WCHAR wide[4096];
    if (!unix_name || strlen(arg) < 3 || !((arg[0] | 32) >= 'a' && (arg[0] | 32) <= 'z')
        || arg[1] != ':' || (arg[2] != '\\' && arg[2] != '/'))
        return NULL;
    if (!MultiByteToWideChar(CP_UTF8, 0, arg, -1, wide, 4096))
        return NULL;
    return unix_name(wide);
}

/* arg in single quotes for sh, a quote inside it as '\''. */
static void put_quoted(FILE *f, const char *arg)
{
    fputc('\'', f);
    for (; *arg; arg++) {
        if (*arg == '\'')
            fputs("'\\''", f);
        else
            fputc(*arg, f);
    }
    fputs("' ", f);
}

static int relay(const char *from, FILE *to)
{
    char buf[65536];
    size_t n;
    FILE *f = fopen(from, "rb");
    if (!f)
        return 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, to);
    fclose(f);
    return 1;
}

int wmain(int argc, WCHAR **wargv)
{
    char base[512], unix_base[512], path[600], line[32];
    const char *suffixes[] = {".sh", ".out", ".err", ".status", ".tmp"};
    STARTUPINFOA si = {sizeof si};
    PROCESS_INFORMATION pi;
    char cmd[700];
    FILE *script;
    int i;
    DWORD waited;

    /* git's output byte for byte: no \n to \r\n. */
    _setmode(_fileno(stdout), _O_BINARY);
    _setmode(_fileno(stderr), _O_BINARY);
    unix_name = (unix_name_fn)GetProcAddress(GetModuleHandleA("kernel32"), "wine_get_unix_file_name");
    snprintf(unix_base, sizeof unix_base, "%s/run/%lu", RELAY_DIR, (unsigned long)GetCurrentProcessId());
    snprintf(base, sizeof base, "Z:%s", unix_base);
    for (char *p = base; *p; p++)
        if (*p == '/')
            *p = '\\';
    for (i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s%s", base, suffixes[i]);
        DeleteFileA(path);
    }

    snprintf(path, sizeof path, "%s.sh", base);
    script = fopen(path, "wb");
    if (!script) {
        fprintf(stderr, "git relay: cannot write %s\n", path);
        return 127;
    }
    fputs("git ", script);
    for (i = 1; i < argc; i++) {
        char arg[8192];
        char *unix_path;
        if (!WideCharToMultiByte(CP_UTF8, 0, wargv[i], -1, arg, sizeof arg, NULL, NULL)) {
            fprintf(stderr, "git relay: argument %d too long\n", i);
            return 127;
        }
        unix_path = to_unix(arg);
        put_quoted(script, unix_path ? unix_path : arg);
    }
    fprintf(script, "</dev/null >'%s.out' 2>'%s.err'\necho $? >'%s.tmp'\nmv '%s.tmp' '%s.status'\n",
            unix_base, unix_base, unix_base, unix_base, unix_base);
    fclose(script);

    snprintf(cmd, sizeof cmd, "/bin/sh %s.sh", unix_base);
    if (!CreateProcessA(NULL, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi)) {
        fprintf(stderr, "git relay: cannot start /bin/sh (%lu)\n", GetLastError());
        return 127;
    }
    snprintf(path, sizeof path, "%s.status", base);
    for (waited = 0; waited < 120000; waited += 5) {
        FILE *status = fopen(path, "rb");
        if (status) {
            int code = 127;
            if (fgets(line, sizeof line, status))
                code = atoi(line);
            fclose(status);
            snprintf(path, sizeof path, "%s.out", base);
            relay(path, stdout);
            snprintf(path, sizeof path, "%s.err", base);
            relay(path, stderr);
            fflush(stdout);
            fflush(stderr);
            for (i = 0; i < 5; i++) {
                snprintf(path, sizeof path, "%s%s", base, suffixes[i]);
                DeleteFileA(path);
            }
            return code;
        }
        Sleep(5);
    }
    fprintf(stderr, "git relay: git never finished\n");
    return 127;
}

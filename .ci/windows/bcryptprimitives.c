/* Stand-in for Windows' bcryptprimitives.dll, which Wine 8 lacks: every
 * program built by Rust >= 1.78 imports ProcessPrng from it and does not
 * load without it (status c0000135). Wine's RtlGenRandom does the work. */
#include <windows.h>

#define RtlGenRandom SystemFunction036
BOOLEAN NTAPI RtlGenRandom(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

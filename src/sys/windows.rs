//! Who keygate runs as on Windows, for the two places that must tell this
//! user from others: git's repository ownership rule (a repository owned by
//! someone else is left to git) and the access rule on the scheme
//! hand-off's named pipe.

use std::io;
use std::os::windows::ffi::OsStrExt;
use std::path::Path;
use std::ptr::null_mut;

use windows_sys::Win32::Foundation::{CloseHandle, ERROR_SUCCESS, HANDLE, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, GetNamedSecurityInfoW, SE_FILE_OBJECT,
};
use windows_sys::Win32::Security::{
    EqualSid, GetTokenInformation, OWNER_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID,
    TOKEN_QUERY, TOKEN_USER, TokenUser,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

/// The user of this process's token.
pub struct CurrentUser {
    /// A TOKEN_USER and the SID it points into; u64s for its alignment.
    token_user: Vec<u64>,
}

impl CurrentUser {
    pub fn get() -> io::Result<Self> {
        let mut token: HANDLE = null_mut();
        // SAFETY: the pseudo-handle of this process needs no closing;
        // `token` receives a handle closed below.
        if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
            return Err(io::Error::last_os_error());
        }
        let mut len = 0u32;
        // SAFETY: a size query: no buffer, `len` receives the size needed.
        unsafe { GetTokenInformation(token, TokenUser, null_mut(), 0, &mut len) };
        let mut token_user = vec![0u64; (len as usize).div_ceil(8).max(1)];
        // SAFETY: the buffer holds `len` bytes, aligned for TOKEN_USER.
        let ok = unsafe {
            GetTokenInformation(
                token,
                TokenUser,
                token_user.as_mut_ptr().cast(),
                len,
                &mut len,
            )
        };
        let error = io::Error::last_os_error();
        // SAFETY: `token` was opened above and is closed once.
        unsafe { CloseHandle(token) };
        if ok == 0 {
            return Err(error);
        }
        Ok(Self { token_user })
    }

    fn sid(&self) -> PSID {
        // SAFETY: GetTokenInformation filled the buffer with a TOKEN_USER
        // whose SID lies inside the same buffer, which lives as long as self.
        unsafe { (*self.token_user.as_ptr().cast::<TOKEN_USER>()).User.Sid }
    }

    /// The SID as text (`S-1-5-21-...`), as security descriptor strings
    /// name it.
    pub fn sid_string(&self) -> io::Result<String> {
        let mut text: *mut u16 = null_mut();
        // SAFETY: a valid SID in; `text` receives a LocalAlloc'd string,
        // freed below.
        if unsafe { ConvertSidToStringSidW(self.sid(), &mut text) } == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `text` is NUL-terminated.
        let len = (0..).take_while(|&i| unsafe { *text.add(i) } != 0).count();
        // SAFETY: `len` u16s precede the NUL.
        let sid = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(text, len) });
        // SAFETY: allocated by ConvertSidToStringSidW, freed once.
        unsafe { LocalFree(text.cast()) };
        Ok(sid)
    }

    /// Whether this user owns the file or directory at `path`, as Git for
    /// Windows decides whether a repository is the user's own. Any failure
    /// counts as "not mine", which leaves the decision to git.
    pub fn owns(&self, path: &Path) -> bool {
        let wide: Vec<u16> = path.as_os_str().encode_wide().chain(Some(0)).collect();
        let mut owner: PSID = null_mut();
        let mut descriptor: PSECURITY_DESCRIPTOR = null_mut();
        // SAFETY: a NUL-terminated path in; `owner` points into
        // `descriptor`, which is LocalAlloc'd and freed below.
        let status = unsafe {
            GetNamedSecurityInfoW(
                wide.as_ptr(),
                SE_FILE_OBJECT,
                OWNER_SECURITY_INFORMATION,
                &mut owner,
                null_mut(),
                null_mut(),
                null_mut(),
                &mut descriptor,
            )
        };
        if status != ERROR_SUCCESS {
            return false;
        }
        // SAFETY: both SIDs are valid while `descriptor` and self live.
        let mine = !owner.is_null() && unsafe { EqualSid(owner, self.sid()) } != 0;
        // SAFETY: allocated by GetNamedSecurityInfoW, freed once.
        unsafe { LocalFree(descriptor) };
        mine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owns_what_it_creates() {
        let user = CurrentUser::get().unwrap();
        let dir = tempfile::tempdir().unwrap();
        assert!(user.owns(dir.path()));
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        assert!(user.owns(&dir.path().join("file")));
        assert!(!user.owns(&dir.path().join("missing")));
        assert!(user.sid_string().unwrap().starts_with("S-1-"));
    }
}

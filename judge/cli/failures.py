"""How a failure that is not a `JudgeError` becomes one line: operating-system errors, SQLite errors,
truncated or corrupt files, and end-of-input.

The CLI calls `describe` on whatever escaped a command. It returns the line to print (naming the
file and the fix) for failures a user can act on, or None for a bug (which stays "internal error").
"""

from __future__ import annotations

import errno
import sqlite3
import zipfile

# errno -> what the user can do about it
_FIXES: dict[int, str] = {
    errno.EACCES: "permission denied: make it readable/writable for this user, or choose another "
                  "--run / output folder",
    errno.EPERM: "operation not permitted: check its owner and mode, or choose another folder",
    errno.EROFS: "read-only file system: choose a writable folder (e.g. another --run)",
    errno.ENOSPC: "no space left on the device: free some space and rerun the same command "
                  "(finished items are kept)",
    errno.EDQUOT: "disk quota exceeded: free some space and rerun the same command (finished "
                  "items are kept)",
    errno.ENOTDIR: "a path component is a file where a folder is expected: move that file aside "
                   "or choose another path",
    errno.EISDIR: "a folder where a file is expected: move that folder aside or choose another path",
    errno.EEXIST: "already exists where judge needs to create it: move it aside",
    errno.ENOENT: "no such file or folder: check the path",
    errno.ENAMETOOLONG: "file name too long: choose a shorter path",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) and rerun",
    errno.EIO: "input/output error from the device: check the disk and rerun",
    errno.ENOTEMPTY: "folder not empty: move it aside",
    errno.ELOOP: "too many symbolic links: check the path",
}


def _os_error(err: OSError) -> str:
    where = err.filename if err.filename is not None else None
    if where is not None and err.filename2 is not None:
        where = f"{err.filename} -> {err.filename2}"
    fix = _FIXES.get(err.errno or -1)
    if fix is None:
        reason = err.strerror or str(err) or type(err).__name__
        fix = f"{reason.rstrip('.')}: check the path and rerun"
    return f"{where}: {fix}" if where else f"{fix} ({err.strerror or err})"


def _sqlite(err: sqlite3.Error) -> str:
    text = " ".join(str(err).split())
    low = text.lower()
    if "locked" in low or "busy" in low:
        fix = "another judge process is using the run's judge cache (judge_cache.sqlite); wait for " \
              "it to finish, or stop it, then rerun"
    elif "not a database" in low or "malformed" in low or "corrupt" in low:
        fix = "the judge cache (judge_cache.sqlite) is corrupt: move it aside and rerun (its " \
              "verdicts are also in judgments/*.jsonl)"
    elif "readonly" in low or "read-only" in low:
        fix = "the judge cache (judge_cache.sqlite) is read-only: make the run folder writable"
    elif "unable to open" in low:
        fix = "the judge cache (judge_cache.sqlite) cannot be opened: check that the run folder " \
              "exists and is writable"
    else:
        fix = "the judge cache (judge_cache.sqlite) failed: move it aside and rerun"
    return f"{fix} (sqlite: {text})"


def describe(err: BaseException) -> str | None:
    """The one line for a failure the user can fix, or None when it is a bug."""
    if isinstance(err, sqlite3.Error):
        return _sqlite(err)
    if isinstance(err, zipfile.BadZipFile):
        return f"a stored .npz file is corrupt ({err}): move the run's divergence/ folder aside " \
               "and rerun `judge diverge`"
    if isinstance(err, EOFError):
        return f"input ended early ({' '.join(str(err).split()) or 'EOFError'}): a file is " \
               "truncated or a stream closed; check the input files and rerun"
    if isinstance(err, UnicodeError):
        return None  # decoding errors are reported where the file is known
    if isinstance(err, OSError):
        return _os_error(err)
    return None


def safe(text: str) -> str:
    """One line: no newlines or control characters from a path or a library's message."""
    return "".join(ch if ch.isprintable() else "?" for ch in " ".join(text.split()))[:500]


__all__ = ["describe", "safe"]

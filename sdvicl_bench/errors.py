"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""

import errno


class UserError(Exception):
    """A problem with the user's input or environment, with the fix in the message.

    The message is one line: what is wrong, then what to do about it.
    """


class ConfigError(UserError):
    """An override, key, group or value that does not fit the config schema."""


class DataError(UserError):
    """A dataset root, file or image that is missing or unreadable."""


class ModelError(UserError):
    """Model weights that cannot be found or loaded."""


DISK_ERRORS = {
    errno.ENOSPC: "No space left on device",
    errno.EROFS: "Read-only file system",
    errno.EACCES: "Permission denied",
}
"""The OSErrors a user fixes by choosing another folder (or freeing space), by errno."""


def disk_error_line(err: OSError, fix: str) -> str | None:
    """One line for a full disk, a read-only file system or a permission problem; else None.

    Names the path (`err.filename`, when the failing call knew it), the cause and the fix:
    free space, or `fix` (the command's way to choose a writable folder).
    """
    if err.errno == errno.ENAMETOOLONG:
        name = str(err.filename or "a path")
        shown = name if len(name) <= 120 else f"{name[:80]}...{name[-30:]}"
        return (
            f"File name too long: {shown} (at most 255 characters per folder "
            f"name and 4,095 per path). Fix: {fix}, with a shorter path."
        )
    cause = DISK_ERRORS.get(err.errno)
    if cause is None:
        return None
    where = f": {err.filename}" if err.filename else " while writing"
    if err.errno == errno.ENOSPC:
        return f"{cause}{where}. Fix: free space on that disk, or {fix}."
    return f"{cause}{where}. Fix: make it writable for this user, or {fix}."

"""Errors of the storage layer; each message is fit to show a user (no secret, no SQL).

```
StorageError
 ├── NotFound               an id unknown in *this* workspace (another workspace's id too)
 │    ├── WorkspaceNotFound
 │    ├── AppNotFound
 │    └── NoSuchSend
 ├── InvalidInput           a name, id or value the caller should have refused
 ├── DuplicateAppName
 ├── AppInUse               removing an app that active sends still need
 ├── IllegalTransition      a move the send state machine does not have
 ├── SelfApproval           the requester approving their own send
 ├── AlreadyDecided         an approver answering twice
 ├── ShortIdExhausted       no free short id after several tries (a full workspace)
 └── AuditKeyMissing        an audit event written on a database opened without audit keys
```
Secret decryption failures are `storage.crypto.SecretDecryptionError`.
"""

from __future__ import annotations


class StorageError(Exception):
    """Root of the storage errors."""


class NotFound(StorageError):
    """Nothing with that id in this workspace."""


class WorkspaceNotFound(NotFound):
    """No such workspace."""

    def __init__(self, team_id: str) -> None:
        self.team_id = team_id
        super().__init__(f"No workspace {team_id} is known to PushOps.")


class AppNotFound(NotFound):
    """No OneSignal app of that name (or no default app) in the workspace."""

    def __init__(self, team_id: str, name: str | None) -> None:
        self.team_id = team_id
        self.name = name
        what = f"named {name!r}" if name else "set as default"
        super().__init__(f"No OneSignal app {what} in workspace {team_id}.")


class NoSuchSend(NotFound):
    """No send with that id in the workspace."""

    def __init__(self, team_id: str, ref: str) -> None:
        self.team_id = team_id
        self.ref = ref
        super().__init__(f"No send {ref} in workspace {team_id}.")


class InvalidInput(StorageError, ValueError):
    """A value the storage layer refuses; the message says what is expected."""


class DuplicateAppName(StorageError):
    """An app of that name already exists in the workspace."""

    def __init__(self, team_id: str, name: str) -> None:
        self.team_id = team_id
        self.name = name
        super().__init__(f"Workspace {team_id} already has an app named {name!r}.")


class AppInUse(StorageError):
    """Active sends still use the app."""

    def __init__(self, team_id: str, name: str, active: int) -> None:
        self.team_id = team_id
        self.name = name
        self.active = active
        sends, them, they_are = (
            ("1 send", "it", "it is") if active == 1 else (f"{active} sends", "them", "they are")
        )
        super().__init__(
            f"The app {name!r} of workspace {team_id} has {sends} not yet delivered; "
            f"cancel {them} or wait until {they_are} sent."
        )


class IllegalTransition(StorageError):
    """The state machine has no such move."""


class SelfApproval(StorageError):
    """A requester cannot approve their own send."""


class AlreadyDecided(StorageError):
    """This approver already answered for this send."""


class ShortIdExhausted(StorageError):
    """No free short id was found (practically never: 32^6 ids per workspace)."""


class AuditKeyMissing(StorageError):
    """The database was opened without the audit keys, so no audit event can be written."""

    def __init__(self) -> None:
        super().__init__(
            "No audit key: this database was opened without the keys derived from "
            "PUSHOPS_SECRET_KEY, so no audit event can be written."
        )


class NotEditable(StorageError):
    """The send is no longer scheduled or pending approval: gone out, going, or ended."""

    def __init__(self, short_id: str, state: str) -> None:
        self.short_id = short_id
        self.state = state
        super().__init__(f"Send {short_id} is {state}; only an upcoming send can be edited.")

"""Where a study lives: an Optuna journal file (the default, no server) or any SQLAlchemy database.

``--storage`` takes an SQLAlchemy URL (``postgresql://user@db/tp``, ``mysql+pymysql://...``,
``sqlite:///study.db``) or a path ending in ``.log``/``.journal`` (a journal file, which several
processes and machines on a shared filesystem can append to). Every problem (a bad URL, a missing
driver, a database that does not answer) is one line that names the storage with its password hidden.
"""

from __future__ import annotations

import re
import sys
import time
import warnings
from pathlib import Path

import optuna

from trainpilot.config import ConfigError

JOURNAL_SUFFIXES = (".log", ".journal")
CONNECT_TIMEOUT_S = 10
LOCK_GRACE_S = 30  # Optuna's: a journal lock untouched this long is taken to be a dead writer's


def shown(url: str) -> str:
    """``url`` with any password replaced by ***, for messages and logs."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a parsable URL: hide anything between "user:" and "@"
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def open_storage(storage: str | None, study_dir: Path) -> tuple[optuna.storages.BaseStorage, str]:
    """The storage for ``storage`` (None: ``study_dir/study.journal``) and how to show it."""
    if not storage:
        storage = str(study_dir / "study.journal")
    if "://" not in storage:
        path = Path(storage).expanduser()
        if path.suffix not in JOURNAL_SUFFIXES:
            raise ConfigError(f"--storage '{storage}' is neither a database URL (postgresql://user@host/db, "
                              f"sqlite:///file.db) nor a journal file ending in .log or .journal")
        if not path.parent.is_dir():
            raise ConfigError(f"--storage '{storage}': folder '{path.parent}' does not exist")
        from optuna.storages.journal import JournalFileBackend

        # Absolute: Optuna's lock is a symlink to this path, and a relative target dangles (it resolves
        # from the link's folder), which its stale-lock check cannot see, so a dead writer's lock hung every
        # later process.
        path = path.resolve()
        _clear_dangling_lock(path)
        try:
            return optuna.storages.JournalStorage(JournalFileBackend(str(path))), str(path)
        except OSError as err:
            raise ConfigError(f"--storage '{storage}': cannot open the journal file ({err.strerror or err})") from None
    return _database(storage), shown(storage)


def _clear_dangling_lock(path: Path) -> None:
    """Remove a journal lock that points nowhere (left by a writer killed while it held a lock on a relative
    path) once it is older than the grace period in which a live writer could still release it."""
    lock = Path(f"{path}.lock")
    try:
        if not lock.is_symlink() or lock.exists():
            return
        wait = LOCK_GRACE_S - (time.time() - lock.lstat().st_mtime)
        if wait > 0:
            time.sleep(wait)
        if lock.is_symlink() and not lock.exists():
            lock.unlink()
            print(f"removed the stale journal lock {lock}: its writer died while holding it", file=sys.stderr)
    except FileNotFoundError:  # released meanwhile
        pass


def _database(url: str) -> optuna.storages.RDBStorage:
    import sqlalchemy.exc

    try:
        from sqlalchemy.engine import make_url

        backend = make_url(url).get_backend_name()
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise ConfigError(f"--storage '{shown(url)}' is not a valid database URL; e.g. "
                          f"postgresql://user:password@host:5432/db") from None
    engine_kwargs = {"pool_pre_ping": True}
    if backend in ("postgresql", "mysql"):
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna, and what multi-machine studies need
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # heartbeats let any worker mark a trial of a killed worker as failed and go on
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=30, grace_period=120)
    except ImportError as err:
        driver = getattr(err.__cause__, "name", None) or backend
        package = "'psycopg[binary]'" if backend == "postgresql" else driver
        raise ConfigError(f"--storage '{shown(url)}' needs the Python database driver '{driver}' (pip install "
                          f"{package})") from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as err:
        detail = str(getattr(err, "orig", None) or err).strip().splitlines()
        detail = detail[0] if detail else type(err).__name__
        raise ConfigError(f"--storage '{shown(url)}': cannot use the database: {detail}") from None

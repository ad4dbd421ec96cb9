"""Running units: here, in a pool of processes, or on a Dask distributed cluster.

All three hand each finished unit to the same ``on_done`` callback in this process, which
persists it at once. Workers only compute; they write nothing. Dask is optional
(``pip install histoquant[dask]``) and imported only when a scheduler is named.

:func:`measure_units` is the measuring step of a study run and of a single-assay command: it
skips the units an earlier run finished (``resume``), runs the rest with :func:`execute`,
keeps each finished unit in the part store, hands its QC picture and files to the caller's
writer the moment it arrives, and reports progress through the one :data:`BatchProgress`
protocol.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import DependencyError
from ..progress import BatchProgress
from .store import PartStore, decode_part
from .units import Unit, UnitOutput, failed_output, process_unit

if TYPE_CHECKING:  # optional extra (histoquant[dask]): imported where a scheduler is named
    import distributed

__all__ = ["BatchProgress", "Measured", "execute", "measure_units", "dask_client",
           "side_process"]

log = logging.getLogger(__name__)

OnDone = Callable[[Unit, UnitOutput], None]
# What a worker does with one unit: process_unit, or the first pass of a study-wide threshold
# (histoquant.batch.thresholds.sample_job); a module-level function, so it pickles by name.
Work = Callable[[Any], UnitOutput]

# BatchProgress (histoquant.progress): ``progress(done, total, message)``, the one progress
# protocol of a run over images — called once with ``done = 0`` before the first image, then
# after each image (the CLI draws it as a tqdm bar, the napari widget as a progress bar).


def _crashed(unit: Unit, why: str) -> UnitOutput:
    return failed_output(unit, "WorkerDied", why, "failed: worker died")


def _serial(units: Sequence[Unit], on_done: OnDone, work: Work = process_unit) -> None:
    for u in units:
        on_done(u, work(u))


# One thread per worker for the numerical libraries (what Dask's nanny sets for its workers
# too): N workers on N cores, each also starting a thread per core for its BLAS calls, would
# oversubscribe the machine and slow every worker down.
_WORKER_THREADS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def _single_threaded_children():
    """Spawned children see one-thread settings, unless the user has set their own."""
    added = [k for k in _WORKER_THREADS_ENV if k not in os.environ]
    for k in added:
        os.environ[k] = "1"
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def _processes(units: Sequence[Unit], jobs: int, on_done: OnDone,
               work: Work = process_unit) -> None:
    with _single_threaded_children():
        _process_pool(units, jobs, on_done, work)


def _process_pool(units: Sequence[Unit], jobs: int, on_done: OnDone,
                  work: Work = process_unit) -> None:
    """Run units on ``jobs`` spawned workers; a worker that dies fails only its own unit.

    When a worker process dies (the out-of-memory killer, a crash in native code), the pool
    breaks and every unit in flight loses its result, with no word of which unit killed it.
    Those units become suspects and run again one at a time, each alone in a fresh pool: a
    suspect that kills its worker while alone is the culprit and gets an error row; the
    others are measured as if nothing had happened. Units not yet started are unaffected.
    """
    # spawn: workers start clean (no inherited threads or locks), as on macOS and Windows
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx)
    todo = list(units)[::-1]
    suspects: list[Unit] = []
    running: dict[Any, Unit] = {}
    alone = False  # running holds one suspect and nothing else
    try:
        while todo or suspects or running:
            died: list[Unit] = []
            if suspects and not running:
                batch, alone = [suspects.pop()], True
            elif not suspects and not alone:
                # at most 2 units per worker queued, so an interrupted run has little in flight
                batch = [todo.pop() for _ in range(min(len(todo), 2 * jobs - len(running)))]
            else:
                batch = []
            for i, u in enumerate(batch):
                try:
                    running[pool.submit(work, u)] = u
                except BrokenProcessPool:  # a worker died since the last wait
                    suspects.extend(batch[i:][::-1])
                    alone = False
                    break
            else:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    u = running.pop(fut)
                    try:
                        out = fut.result()
                    except BrokenProcessPool:
                        died.append(u)
                        continue
                    on_done(u, out)
                if not died:
                    if not running:
                        alone = False
                    continue
            # Every future still pending shares the broken pool's fate; one that finished
            # before the death keeps its result.
            for fut, u in running.items():
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    on_done(u, fut.result())
                else:
                    died.append(u)
            running.clear()
            pool.shutdown(wait=False, cancel_futures=True)
            pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx)
            if alone and len(died) == 1:
                log.warning("%s: the worker process died while measuring it, alone",
                            died[0].sample.rel)
                on_done(died[0], _crashed(died[0], _DIED))
            else:
                suspects.extend(died[::-1])
            alone = False
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


_DIED = ("the worker process died while measuring this image, alone (out of memory, or a "
         "crash in native code); check its size and format, then run again with --resume "
         "to retry it")


def dask_client(scheduler: str | distributed.Client) -> tuple[distributed.Client, bool]:
    """Return a ``distributed.Client`` for a scheduler address (or the client given).

    Parameters
    ----------
    scheduler : str or distributed.Client
        A scheduler address (``tcp://host:8786``) or a client already connected.

    Returns
    -------
    client : distributed.Client
        The client to submit work to.
    owned : bool
        True when the client was made here (and must be closed by the caller).
    """
    try:
        import distributed
    except ImportError as exc:
        raise DependencyError(
            "--scheduler needs Dask distributed, which is not installed; install it with "
            "pip install 'histoquant[dask]'") from exc
    if isinstance(scheduler, distributed.Client):
        return scheduler, False
    try:
        return distributed.Client(scheduler), True
    except OSError as exc:
        raise DependencyError(f"cannot reach the Dask scheduler at {scheduler!r} ({exc})") \
            from exc


def _dask(units: Sequence[Unit], scheduler: Any, on_done: OnDone,
          work: Work = process_unit) -> None:
    client, own = dask_client(scheduler)
    import distributed
    futures = {}
    try:
        for u in units:
            fut = client.submit(work, u, key=f"histoquant-{u.key}", pure=False)
            futures[fut] = u
        for fut in distributed.as_completed(list(futures)):
            u = futures[fut]
            try:
                out = fut.result()
            except Exception as exc:  # KilledWorker and friends: the unit could not run
                out = _crashed(u, f"the Dask worker failed ({type(exc).__name__}: {exc}); run "
                                  "again with --resume to retry")
            on_done(u, out)
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        if own:
            client.close()


def _load_writers() -> None:
    import openpyxl  # noqa: F401

    from .. import output  # noqa: F401


def side_process(jobs: int, scheduler: Any = None) -> ProcessPoolExecutor | None:
    """Return one spare local process for the serial tail of a parallel run, or None.

    Once the images are measured the workers are gone; writing the Excel workbook (the
    slowest part of assembling a large study) in a second process overlaps it with the
    tables, the pictures and the report. Only for local runs with ``jobs`` > 1: a one-job
    run promised one process, and a Dask run's own machine may have one core.

    Parameters
    ----------
    jobs : int
        Number of local worker processes of the run.
    scheduler : object, optional
        The Dask scheduler (address or client) of a distributed run.

    Returns
    -------
    concurrent.futures.ProcessPoolExecutor or None
        A one-process pool, already started, or None.
    """
    if scheduler is not None or jobs <= 1:
        return None
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    pool.submit(_load_writers)  # start and import now, while the parts are read back
    return pool


def _largest_first(units: Sequence[Unit]) -> list[Unit]:
    """Units ordered by decreasing file size, a proxy for their cost.

    Started in the order of the sample sheet, a study's slowest images (whole slides, the
    vessel stacks) can come last and leave one worker busy while the others idle; longest
    first keeps the workers' finishing times close (Graham's LPT rule).
    """
    def size(u: Unit) -> int:
        try:
            return os.stat(u.sample.path).st_size
        except OSError:
            return 0

    return sorted(units, key=size, reverse=True)


def execute(units: Sequence[Unit], on_done: OnDone, *, jobs: int = 1,
            scheduler: Any = None, work: Work = process_unit) -> None:
    """Run every unit and call ``on_done(unit, output)`` as each finishes.

    Parameters
    ----------
    units : sequence of Unit
        Work to do.
    on_done : callable
        Called in this process, in completion order.
    jobs : int
        Worker processes on this machine (1 runs here, in this process).
    scheduler : str or distributed.Client, optional
        A Dask scheduler address (``tcp://host:8786``) or client; overrides ``jobs``.
    work : callable
        What is done with each unit, in the workers (a module-level function, so that it
        pickles): :func:`~histoquant.batch.units.process_unit` by default; the first pass of
        a study-wide threshold runs :func:`~histoquant.batch.thresholds.sample_job` on its
        sampling jobs (which carry ``key``, ``sample`` and ``assay`` as a unit does).
    """
    if not units:
        return
    if scheduler is not None:
        _dask(_largest_first(units), scheduler, on_done, work)
    elif jobs <= 1:
        _serial(units, on_done, work)
    else:
        _processes(_largest_first(units), min(jobs, len(units)), on_done, work)


@dataclass
class Measured:
    """What the measuring step of a study run left for assembling.

    Attributes
    ----------
    records : dict of str to dict
        Unit key → record of every unit that failed (at planning or now), with ``error``.
    finished : dict of str to UnitOutput
        Units measured now, decoded from their parts (tables and thumbnail; the QC picture is
        already written and dropped).
    n_run : int
        Units measured now.
    n_reused : int
        Units skipped because an earlier run finished them (``resume``).
    """

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished: dict[str, UnitOutput] = field(default_factory=dict)
    n_run: int = 0
    n_reused: int = 0


def measure_units(units: Sequence[Unit], failed: Sequence[UnitOutput], store: PartStore, *,
                  on_files: OnDone | None = None, jobs: int = 1, scheduler: Any = None,
                  resume: bool = False, progress: BatchProgress | None = None) -> Measured:
    """Measure units; keep each in ``store`` and hand its pictures and files on as it ends.

    Parameters
    ----------
    units : sequence of Unit
        The units to measure (a study plan's, or the files of a single-assay command).
    failed : sequence of UnitOutput
        Units failed already (at planning): their records are kept, they are not run.
    store : PartStore
        Where finished units are kept (and, with ``resume``, found).
    on_files : callable, optional
        ``on_files(unit, output)`` with each unit measured now, decoded from its part with its
        QC picture and files (:data:`~histoquant.batch.units.UNIT_FILES`), to write them at
        once; they are dropped afterwards, only the tables and thumbnail are kept.
    jobs : int
        Worker processes on this machine.
    scheduler : str or distributed.Client, optional
        A Dask scheduler; overrides ``jobs``.
    resume : bool
        Skip units whose part an earlier run left.
    progress : BatchProgress, optional
        Told before the first unit and after each.

    Returns
    -------
    Measured

    Raises
    ------
    KeyboardInterrupt
        Passed on, after a warning saying how many units are kept for ``resume``.
    """
    m = Measured(records={f.key: f.meta for f in failed})
    todo = []
    for u in units:
        if resume and store.has(u.key):
            m.n_reused += 1
        else:
            todo.append(u)
    total = len(todo)
    done = 0

    def on_done(unit: Unit, result: UnitOutput) -> None:
        nonlocal done
        done += 1
        if done == 1 and (jobs > 1 or scheduler is not None):
            # The report's statistics need scipy.stats (≈ 0.7 s to import): imported here,
            # while the workers measure, it is off the serial tail of a parallel run.
            import scipy.stats  # noqa: F401
        if result.ok:
            data = store.write(result)
            # Parsed and its QC picture written now, while the workers measure, rather than
            # all at the end; only the tables and thumbnail are kept for assembling.
            part = decode_part(data, result.key, pictures=True)
            if on_files is not None:
                on_files(unit, part)
            m.finished[result.key] = dataclasses.replace(part, qc_png=None, files={})
            m.n_run += 1
            msg = f"{unit.sample.rel} ({unit.assay}): ok"
        else:
            m.records[unit.key] = result.meta
            msg = f"{unit.sample.rel} ({unit.assay}): FAILED {result.meta['error']['error']}"
            log.warning("%s: %s", unit.sample.rel, result.meta["error"]["message"])
        if progress is not None:
            progress(done, total, msg)

    if progress is not None and total:
        progress(0, total, "")
    try:
        execute(todo, on_done, jobs=jobs, scheduler=scheduler)
    except KeyboardInterrupt:
        log.warning("interrupted: %d of %d finished image(s) are kept in %s; run again with "
                    "--resume to go on", done, total, store.dir)
        raise
    return m

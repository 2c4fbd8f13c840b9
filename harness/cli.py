"""``bench``: the command line. Thin typer commands over the harness's plain functions.

Exit codes: 0 all systems measured, 1 a system failed, 2 bad input, 3 results not saved in
the results folder (saved elsewhere, or lost; every system still ran), 130 interrupted.
"""

from __future__ import annotations

import signal
import sys
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from harness import compare as comparison
from harness import runner
from harness.errors import BenchError, InputError
from harness.process import shutdown
from harness.results import PointRecord
from harness.scenario import Scenario, load_scenario
from harness.storage import ResultStore, prepare_dir
from harness.table import cell, markdown_table

EXIT_NOT_SAVED = 3
EXIT_INTERRUPTED = 130
QUICK = runner.RunOptions(warmup_s=0.3, duration_s=1.0, repeats=1, max_windows=4)

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
err = Console(stderr=True)


@app.callback()
def _root() -> None:
    """pipebench: compare inference serving stacks under the same load."""


class RichProgress(runner.Progress):
    """A bar per load point on stderr; the tables go to stdout."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: TaskID | None = None

    def point_started(self, label: str, point: str, seconds: float) -> None:
        self._task = self._progress.add_task(f"{label} · {point}", total=seconds)

    def tick(self, elapsed: float) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=elapsed)

    def point_finished(self, record: PointRecord) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
        self._progress.console.print(f"  {record.label} · {record.point_name}: {cell(record)}")

    def message(self, text: str) -> None:
        self._progress.console.print(text)


def _scenario_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
            if not found:
                raise InputError(f"{path}: no scenario files (*.yaml) in this folder")
            files.extend(found)
        else:
            files.append(path)
    return files


def _select_systems(path: Path, scenario: Scenario, wanted: str | None) -> Scenario:
    if not wanted:
        return scenario
    names = [name.strip() for name in wanted.split(",") if name.strip()]
    chosen = [s for s in scenario.systems if s.column in names or s.name in names]
    missing = [n for n in names if not any(n in (s.column, s.name) for s in scenario.systems)]
    if missing or not chosen:
        available = ", ".join(s.column for s in scenario.systems)
        unknown = ", ".join(missing) or wanted
        raise InputError(f"{path}: --systems: {unknown} not in this scenario (it has: {available})")
    return scenario.model_copy(update={"systems": chosen})


def _check_unique_names(loaded: list[tuple[Path, Scenario]]) -> None:
    """Result files are named after scenarios: two with one name would overwrite a result."""
    first: dict[str, Path] = {}
    for path, scenario in loaded:
        if scenario.name in first:
            raise InputError(
                f"{path}: name: {scenario.name!r} is also the name of {first[scenario.name]} "
                "(each scenario of a run needs its own name: it names the result file)"
            )
        first[scenario.name] = path


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM. Not a KeyboardInterrupt, which typer turns into its own silent
    exit before :func:`main` can stop the servers and say so; a BaseException, so that
    ``except Exception`` (a failing system) never swallows it. ``saved``: the result file
    of the scenario it interrupted, once the run knows it."""

    saved: Path | None = None


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise Interrupted


@app.command()
def run(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario files or folders of them.")],
    quick: Annotated[
        bool, typer.Option(help="A smoke run: 0.3 s warm-up, 1 s measured, 1 repeat.")
    ] = False,
    systems: Annotated[
        str | None, typer.Option(help="Comma-separated systems (names or labels) to run.")
    ] = None,
    results_dir: Annotated[str, typer.Option(help="Where result JSON files go.")] = "results",
    report_dir: Annotated[
        Path | None,
        typer.Option("--report", help="Then render the results folder's report into this folder."),
    ] = None,
) -> None:
    """Start every system of each scenario, drive it, print the tables, save the results."""
    if not results_dir.strip():
        raise InputError("--results-dir: empty (give a folder, e.g. --results-dir results)")
    folder = Path(results_dir)
    files = _scenario_files(scenarios)
    loaded = [(f, _select_systems(f, load_scenario(f), systems)) for f in files]
    _check_unique_names(loaded)
    prepare_dir(folder)
    options = QUICK if quick else runner.RunOptions()
    failed = not_saved = False
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for path, scenario in loaded:
        store = ResultStore(folder, f"{scenario.name}-{stamp}")
        columns = [spec.column for spec in scenario.systems]
        with Progress(
            TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(), console=err
        ) as bar:
            bar.console.print(f"[bold]{scenario.name}[/bold] ({path})")
            try:
                result = runner.run_scenario(scenario, path, store, options, RichProgress(bar))
            except Interrupted as stop:
                stop.saved = store.path
                raise
        failed |= any(record.failure for record in result.records)
        not_saved |= store.problem is not None
        print(markdown_table(scenario.name, result.records, columns))
        print(f"\n{store.outcome()}\n")
        if store.problem is not None:
            print(f"error: {store.outcome()}", file=sys.stderr)
    if report_dir and not not_saved:
        _render([folder], report_dir)
    if not_saved:
        raise typer.Exit(EXIT_NOT_SAVED)
    if failed:
        raise typer.Exit(1)


@app.command()
def report(
    results: Annotated[
        list[Path] | None,
        typer.Argument(help="Result files or folders of them (default: results/)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Where the pages go.")] = Path("reports"),
) -> None:
    """Render results as Markdown + PNG pages, the seed report and one offline HTML page."""
    _render(results or [Path("results")], out)


def _render(results: list[Path], out: Path) -> None:
    from harness.report.render import render_reports  # matplotlib: only when reporting

    for path in render_reports(results, out):
        print(path)


@app.command()
def compare(
    baseline: Annotated[Path, typer.Argument(help="Result file or folder: the reference.")],
    current: Annotated[Path, typer.Argument(help="Result file or folder: the candidate.")],
    threshold: Annotated[
        str, typer.Option(help="Smallest QPS change that can count (10% or 0.1).")
    ] = "10%",
    normalize_to: Annotated[
        str | None,
        typer.Option(help="Compare QPS as ratios to this system measured in the same run."),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option(help="Also write github-action-benchmark JSON here.")
    ] = None,
) -> None:
    """Regressions between two sets of results: exit 1 on a significant QPS drop."""
    limit = comparison.parse_threshold(threshold)
    verdicts = comparison.compare_paths(baseline, current, limit, normalize_to)
    print(comparison.markdown(verdicts, limit, normalize_to))
    if json_out:
        comparison.write_benchmark_json(json_out, verdicts, normalize_to)
    if comparison.has_regression(verdicts):
        raise typer.Exit(1)


@app.command("list")
def list_scenarios(
    folder: Annotated[Path, typer.Argument(help="Folder of scenario files.")] = Path("scenarios"),
) -> None:
    """The scenarios in a folder, with one line each."""
    for path in _scenario_files([folder]):
        try:
            scenario = load_scenario(path)
        except InputError as exc:
            print(f"{'(invalid)':<20} {exc}")
            continue
        print(f"{scenario.name:<20} {scenario.description}  ({path})")


@app.command()
def env() -> None:
    """What is installed: Triton, perf_analyzer, torchpipe core, runtimes, GPU."""
    from harness.inventory import inventory

    for item in inventory():
        print(f"{item.name:<22} {'yes' if item.found else 'no ':<4} {item.detail}")


def main() -> None:
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        app()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Interrupted as stop:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        shutdown()
        saved = f"partial results saved: {stop.saved}" if stop.saved else "no results saved"
        print(f"interrupted: servers stopped, {saved}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()

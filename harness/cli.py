"""``bench``: the command line. Thin typer commands over the harness's plain functions.

Exit codes: 0 all systems measured (or skipped: unable to run here), 1 a system failed,
2 bad input, 3 results not saved in the results folder (saved elsewhere, or lost; every
system still ran), 130 interrupted.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from harness import compare as comparison
from harness import runner
from harness.errors import BenchError, InputError
from harness.process import shutdown
from harness.results import PointRecord
from harness.scenario import Load, Scenario, SystemSpec, load_scenario, override
from harness.search import summary as search_summary
from harness.storage import ResultStore, prepare_dir
from harness.table import cell, markdown_table

if TYPE_CHECKING:
    from harness.export import SampleWriter

EXIT_NOT_SAVED = 3
EXIT_INTERRUPTED = 130
QUICK = runner.RunOptions(warmup_s=0.2, duration_s=0.6, repeats=1, max_repeats=1)

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
err = Console(stderr=True)


@app.callback()
def _root() -> None:
    """pipebench: compare inference serving stacks under the same load."""


class RichProgress(runner.Progress):
    """A bar per load point on stderr (its rounds in the description); tables go to stdout."""

    def __init__(self, progress: Progress, samples: SampleWriter | None = None) -> None:
        self._progress = progress
        self._task: TaskID | None = None
        self._samples = samples

    def point_started(self, point: str, seconds: float) -> None:
        self._task = self._progress.add_task(point, total=seconds)

    def round_started(self, point: str, round_index: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, description=f"{point} · round {round_index + 1}")

    def tick(self, elapsed: float) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=elapsed)

    def point_finished(self, records: Sequence[PointRecord]) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
        for record in records:
            self._progress.console.print(f"  {record.label} · {record.point_name}: {cell(record)}")

    def message(self, text: str) -> None:
        self._progress.console.print(text)

    def runs_measured(
        self, spec: SystemSpec, load: Load, point: float, runs: list[runner.Run]
    ) -> None:
        if self._samples:
            self._samples.write(spec, load, point, runs)


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


def _overrides(clients: str | None, rates: str | None, sets: list[str]) -> dict[str, Any]:
    """The command line's scenario overrides as dotted field path -> value."""
    changes: dict[str, Any] = {}
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {item}: expected FIELD.PATH=VALUE, e.g. load.duration_s=20")
        try:
            changes[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise InputError(f"--set {item}: the value is not valid YAML") from None
    if clients is not None and rates is not None:
        raise InputError("--clients and --rates: give one of them (closed or open loop)")
    if clients is not None:
        changes["load.clients"] = clients
    if rates is not None:
        changes["load.rates"] = rates
    return changes


def _overridden(path: Path, scenario: Scenario, changes: dict[str, Any]) -> Scenario:
    return override(path, scenario, changes) if changes else scenario


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


def _sample_writer(store: ResultStore) -> SampleWriter:
    from harness.export import SampleWriter  # pandas: only when asked

    return SampleWriter(lambda: store.path)


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
        bool,
        typer.Option(help="A smoke run: one round of 0.2 s warm-up and 0.6 s measured per system."),
    ] = False,
    systems: Annotated[
        str | None, typer.Option(help="Comma-separated systems (names or labels) to run.")
    ] = None,
    results_dir: Annotated[str, typer.Option(help="Where result JSON files go.")] = "results",
    report_dir: Annotated[
        Path | None,
        typer.Option("--report", help="Then render the results folder's report into this folder."),
    ] = None,
    save_samples: Annotated[
        bool,
        typer.Option(
            help="Also keep every request (start, latency, outcome) beside each result file "
            "as NAME.samples.csv.gz."
        ),
    ] = False,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="Clients on a Ray cluster's nodes: its ADDRESS, or local:N for N simulated "
            "nodes on this machine (needs the distributed extra)."
        ),
    ] = None,
    resources: Annotated[
        str | None,
        typer.Option(help="With --cluster: run whole on a node offering these (e.g. GPU=1)."),
    ] = None,
    server_resources: Annotated[
        str | None,
        typer.Option(
            help="With --cluster: start every system's server on a node offering these "
            "(e.g. GPU=1); its clients run on the other nodes."
        ),
    ] = None,
    clients: Annotated[
        str | None,
        typer.Option(help="Closed-loop clients instead: 1,4 or 1:64:x2."),
    ] = None,
    rates: Annotated[
        str | None, typer.Option(help="Open-loop rates instead: 100,500 or 100:2000:+100.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a scenario field: load.duration_s=20 (repeatable)."),
    ] = None,
) -> None:
    """Start every system of each scenario, drive it, print the tables, save the results."""
    if not results_dir.strip():
        raise InputError("--results-dir: empty (give a folder, e.g. --results-dir results)")
    folder = Path(results_dir)
    files = _scenario_files(scenarios)
    changes = _overrides(clients, rates, set_ or [])
    loaded = [
        (f, _select_systems(f, _overridden(f, load_scenario(f), changes), systems)) for f in files
    ]
    if server_resources is not None or any(s.node for _, sc in loaded for s in sc.systems):
        from harness.distributed.server import place_servers

        if resources is not None:
            raise InputError(
                "--resources runs the whole scenario on one node: not with servers placed on nodes"
            )
        loaded = [(f, place_servers(f, sc, server_resources, cluster)) for f, sc in loaded]
    _check_unique_names(loaded)
    prepare_dir(folder)
    options = QUICK if quick else runner.RunOptions()
    failed = not_saved = False
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    with contextlib.ExitStack() as stack:
        run_one = runner.run_scenario
        if cluster or resources:
            from harness.distributed.remote import cluster_runner

            run_one = stack.enter_context(cluster_runner(cluster, resources))
        for path, scenario in loaded:
            store = ResultStore(folder, f"{scenario.name}-{stamp}")
            samples = _sample_writer(store) if save_samples else None
            columns = [spec.column for spec in scenario.systems]
            with Progress(
                TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(), console=err
            ) as bar:
                bar.console.print(f"[bold]{scenario.name}[/bold] ({path})")
                try:
                    result = run_one(scenario, path, store, options, RichProgress(bar, samples))
                except Interrupted as stop:
                    stop.saved = store.path
                    raise
            failed |= any(record.failure for record in result.records)
            not_saved |= store.problem is not None
            print(markdown_table(scenario.name, result.records, columns))
            for line in search_summary(result.records):
                print(f"\n{line}")
            print(f"\n{store.outcome()}" + (f"\nsamples: {samples.path}" if samples else ""))
            print()
            if store.problem is not None:
                print(f"error: {store.outcome()}", file=sys.stderr)
    if report_dir and not not_saved:
        _render([folder], report_dir)
    if not_saved:
        raise typer.Exit(EXIT_NOT_SAVED)
    if failed:
        raise typer.Exit(1)


@app.command()
def serve(
    scenario: Annotated[Path, typer.Argument(help="The scenario file.")],
    system: Annotated[str, typer.Option(help="The system (label or name) to serve.")],
) -> None:
    """Start one system as `bench run` would, print its addresses, keep it up until Ctrl-C."""
    from harness.serve import pick_system
    from harness.serve import serve as serve_system

    loaded = load_scenario(scenario)
    serve_system(loaded, pick_system(loaded, system, str(scenario)), _say)


def _say(text: str) -> None:
    print(text, flush=True)


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
        Path | None,
        typer.Option(
            help="Also write github-action-benchmark JSON here: QPS (customBiggerIsBetter), "
            "and latency (customSmallerIsBetter) beside it as NAME-latency.json."
        ),
    ] = None,
    metrics: Annotated[
        str, typer.Option(help="What to judge, comma-separated: qps, p50 (TP50), p99 (TP99).")
    ] = "qps,p50,p99",
    allow_incomplete: Annotated[
        bool,
        typer.Option(help="Judge an interrupted current run on what it measured; else it fails."),
    ] = False,
) -> None:
    """Regressions between two sets of results: exit 1 on a significant drop in QPS or rise
    in TP50/TP99, or when the current run is incomplete."""
    limit = comparison.parse_threshold(threshold)
    judged = comparison.parse_metrics(metrics)
    verdicts = comparison.compare_paths(
        baseline, current, limit, normalize_to, judged, allow_incomplete
    )
    print(comparison.markdown(verdicts, limit, normalize_to))
    if json_out:
        comparison.write_benchmark_json(json_out, verdicts, normalize_to)
    if comparison.has_regression(verdicts):
        raise typer.Exit(1)


@app.command()
def export(
    results: Annotated[list[Path], typer.Argument(help="Result files or folders of them.")],
    csv: Annotated[Path, typer.Option("--csv", help="The CSV file to write.")],
) -> None:
    """One CSV row per system x point of every result given (pandas.read_csv reads it)."""
    from harness.export import write_csv  # pandas: only when exporting

    count = write_csv(results, csv)
    print(f"{csv}: {count} rows")


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

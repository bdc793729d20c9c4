"""Benchmark: wall time and peak memory of scoring and selecting 10^5 to 10^7 samples ("load without surprises").

Three modes, each size in its own fresh Python process, which reports its own peak resident memory (``VmHWM`` from
/proc/self/status, equal to ``getrusage(RUSAGE_SELF).ru_maxrss``) and the wall time of the work alone:

* ``pipeline``: the project's real pipeline, ``paretohqd.api.run_stage(config, "select")`` on a fresh run directory
  over a synthetic data file (id, prompt, response and two numeric columns, read by two ``type: column``
  objectives): load the data, score it in shards of ``score.shard_size``, merge, pool, one unit per preference,
  summary and plot. Also reported per unit kind: how many ran, their wall time and the peak memory during them (the
  peak is reset before each unit through /proc/self/clear_refs), which says where the memory goes.
* ``chunked``: ``paretohqd.pareto.select_for_preferences_chunked`` over a Parquet file of scores read in batches
  (``pyarrow.parquet.ParquetFile.iter_batches``, score columns only): memory stays flat as n grows.
* ``in-memory``: the same file's score columns read whole, then ``select_for_preferences``: the reference the
  chunked mode must equal (and does: every run compares them, and the pipeline's selection with the chunked one).

Data files and run directories go under ``--out`` (default: a temporary folder, removed afterwards unless --keep),
never inside the repository.

    python bench/load.py                                   # pipeline 1e5, 1e6; chunked and in-memory 1e5 .. 1e7
    python bench/load.py --sizes 100000 --chunked-sizes 100000,1000000 --json /tmp/load.json
    python bench/load.py --shard-size 2048 --batch-size 16 --sizes 100000   # the pipeline's own defaults
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OBJECTIVES = ("reward_a", "reward_b")
# Rows generated (and written as one row group) at a time, so that making a 10^7-row file needs little memory.
WRITE_ROWS = 500_000
# Correlation of the two synthetic rewards: a realistic trade-off with a front of a few dozen layers for P_min.
RHO = 0.5


# ----------------------------------------------------------------------------------------------------- data files


def reward_block(start: int, stop: int, seed: int) -> np.ndarray:
    """Correlated Gaussian rewards of rows ``start..stop``; each block has its own seed, so files of any size share
    their first rows."""
    rng = np.random.default_rng([seed, start])
    chol = np.linalg.cholesky(np.array([[1.0, RHO], [RHO, 1.0]]))
    return rng.standard_normal((stop - start, 2)) @ chol.T


def sample_block(start: int, stop: int, seed: int):
    """A pyarrow table of samples: id, prompt, response (text of varied length) and the two reward columns."""
    import pyarrow as pa
    import pyarrow.compute as pc

    number = pc.cast(pa.array(np.arange(start, stop)), pa.string())
    words = np.random.default_rng([seed, start, 1]).integers(2, 40, stop - start)
    rewards = reward_block(start, stop, seed)
    return pa.table({
        "id": pc.binary_join_element_wise("s", number, ""),
        "prompt": pc.binary_join_element_wise("Please answer question number ", number, " in a few sentences.", ""),
        "response": pc.binary_join_element_wise("Answer ", number, ": ", pc.binary_repeat("lorem ipsum ", words), ""),
        OBJECTIVES[0]: rewards[:, 0], OBJECTIVES[1]: rewards[:, 1]})


def write_file(path: Path, n: int, seed: int, with_text: bool, fmt: str = "parquet") -> Path:
    """Write n rows block by block (bounded memory); without text only an int id and the reward columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists():
        return path
    partial = path.with_name(path.name + ".partial")
    writer = None
    try:
        with open(partial, "wb") as handle:
            for start in range(0, n, WRITE_ROWS):
                stop = min(n, start + WRITE_ROWS)
                if with_text:
                    block = sample_block(start, stop, seed)
                else:
                    rewards = reward_block(start, stop, seed)
                    block = pa.table({"id": np.arange(start, stop), OBJECTIVES[0]: rewards[:, 0],
                                      OBJECTIVES[1]: rewards[:, 1]})
                if fmt == "jsonl":
                    handle.write(block.to_pandas().to_json(orient="records", lines=True).encode())
                else:
                    writer = writer or pq.ParquetWriter(handle, block.schema)
                    writer.write_table(block)
            if writer is not None:
                writer.close()
        partial.rename(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


# -------------------------------------------------------------------------------------------------------- memory


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM), in MB (10^6 bytes)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


def reset_peak() -> bool:
    """Make VmHWM start again from the current RSS (Linux: writing 5 to clear_refs); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# ----------------------------------------------------------------------------------------------- chunked reading


def parquet_score_chunks(path: str, columns, batch_size: int):
    """A re-readable chunk source for ``select_for_preferences_chunked``: each call opens the file and yields
    float64 ``(rows, len(columns))`` arrays of at most ``batch_size`` rows, reading only those columns. (pyarrow
    lives here, not in paretohqd.pareto, which imports numpy only.)"""
    import pyarrow.parquet as pq

    columns = list(columns)
    present = pq.ParquetFile(path).schema_arrow.names
    missing = [c for c in columns if c not in present]
    if missing:
        raise ValueError(f"{path} has no column {missing[0]!r} (columns: {', '.join(present)})")

    def read():
        # pre_buffer=False: with pyarrow's default (True) the reader caches every column chunk it has read until the
        # file is closed, so memory grows by the decoded size of each batch (about +17 MB per 10^6 rows here).
        with pq.ParquetFile(path, pre_buffer=False) as handle:
            for batch in handle.iter_batches(batch_size=batch_size, columns=columns):
                # Nulls become NaN, which the selection rejects with the row's global number.
                yield np.column_stack([batch.column(c).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
                                       for c in columns])

    return read


def same_selection(a, b) -> bool:
    """Exact equality of two selections (pool, layers, statistics, every preference's samples and distances)."""
    if not (np.array_equal(a.pool_indices, b.pool_indices) and np.array_equal(a.pool_layers, b.pool_layers)
            and a.num_layers == b.num_layers and a.stats == b.stats and len(a) == len(b)):
        return False
    return all(np.array_equal(getattr(x, f), getattr(y, f)) for x, y in zip(a, b)
               for f in ("weights", "direction", "indices", "distances", "layers"))


# -------------------------------------------------------------------------------------------------------- workers


def unit_kind(name: str) -> str:
    """'score/reward_a/000003' -> 'score shard'; 'select/pref_04' -> 'select ray'; others by their own name."""
    parts = name.split("/")
    if parts[0] == "score" and len(parts) == 3:
        return "score check" if parts[2] == "check" else "score shard"
    if parts[0] == "score":
        return "score merge"
    if parts[0] == "select" and len(parts) == 2 and parts[1].startswith("pref_"):
        return "select ray"
    return " ".join(parts)


def pipeline_worker(args) -> dict:
    import paretohqd
    import paretohqd.api
    from paretohqd.pipeline import executors

    baseline = rss_mb()
    run_dir = Path(args.run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run: finished units would otherwise be skipped
    config = paretohqd.load_config(base={
        "output_dir": str(run_dir), "method": "paretohqd",
        "data": {"source": args.data, "id_column": "id"},
        "objectives": [{"name": c, "type": "column", "column": c, "batch_size": args.batch_size} for c in OBJECTIVES],
        "score": {"shard_size": args.shard_size, "progress": False},
        "preferences": {"grid": "linear", "n_points": args.preferences},
        "select": {"k": args.k, "min_pool": args.min_pool, "plot": not args.no_plot}})

    units: list[dict] = []
    original = executors.perform
    can_reset = reset_peak()
    began = time.perf_counter()

    def measured(batch_actions, contexts, torch_threads=None):
        if not units:  # the first unit: what planning (loading the data, fingerprinting shards) peaked at
            units.append({"kind": "plan", "wall_s": time.perf_counter() - began, "peak_mb": peak_rss_mb()})
        reset_peak()
        start = time.perf_counter()
        try:
            return original(batch_actions, contexts, torch_threads)
        finally:
            units.append({"kind": unit_kind(contexts[0].name), "wall_s": time.perf_counter() - start,
                          "peak_mb": peak_rss_mb()})

    executors.perform = measured
    try:
        paretohqd.run_stage(config, "select", log=lambda message: None)
    finally:
        executors.perform = original
    wall = time.perf_counter() - began
    peak = max([peak_rss_mb()] + [u["peak_mb"] for u in units]) if can_reset else peak_rss_mb()
    result = {"wall_s": wall, "peak_mb": peak, "baseline_mb": baseline, "units": summarise_units(units)}
    if args.verify:
        result["verified"] = verify_pipeline(run_dir, args)
    return result


def summarise_units(units: list[dict]) -> list[dict]:
    kinds: dict[str, dict] = {}
    for u in units:
        entry = kinds.setdefault(u["kind"], {"kind": u["kind"], "count": 0, "wall_s": 0.0, "peak_mb": 0.0})
        entry["count"] += 1
        entry["wall_s"] += u["wall_s"]
        entry["peak_mb"] = max(entry["peak_mb"], u["peak_mb"])
    return list(kinds.values())


def verify_pipeline(run_dir: Path, args) -> bool:
    """The pipeline's pool and per-preference rows equal the chunked selection over its own scores.parquet."""
    from paretohqd.pareto import linear_grid, select_for_preferences_chunked

    chunks = parquet_score_chunks(str(run_dir / "scores" / "scores.parquet"), OBJECTIVES, args.read_batch)
    ours = select_for_preferences_chunked(chunks, linear_grid(args.preferences), k=args.k, min_pool=args.min_pool,
                                          maximise=True)
    pool = json.loads((run_dir / "selection" / "pool.json").read_text())
    same = pool["indices"] == ours.pool_indices.tolist() and pool["layers"] == ours.pool_layers.tolist()
    for i, result in enumerate(ours):
        entry = json.loads((run_dir / "selection" / f"pref_{i:02d}.json").read_text())
        same = same and entry["rows"] == result.indices.tolist()
    return bool(same)


def chunked_worker(args) -> dict:
    import pyarrow.parquet  # noqa: F401  (imported before the baseline is read)

    from paretohqd.pareto import chunked_candidate_pool, linear_grid, select_for_preferences_chunked

    baseline = rss_mb()
    chunks = parquet_score_chunks(args.data, OBJECTIVES, args.read_batch)
    began = time.perf_counter()
    selection = select_for_preferences_chunked(chunks, linear_grid(args.preferences), k=args.k,
                                               min_pool=args.min_pool, maximise=True)
    wall = time.perf_counter() - began
    result = {"wall_s": wall, "peak_mb": peak_rss_mb(), "baseline_mb": baseline,
              "pool_size": int(selection.pool_indices.size), "num_layers": int(selection.num_layers)}
    found = chunked_candidate_pool(chunks, min_pool=args.min_pool, maximise=True)  # after the peak was read
    result.update(passes=found.passes, layer_bound=found.layer_bound, max_candidates=found.max_candidates)
    if args.verify:
        result["verified"] = same_selection(selection, in_memory_selection(args)[0])
    return result


def in_memory_selection(args):
    import pyarrow.parquet as pq

    from paretohqd.pareto import linear_grid, select_for_preferences

    table = pq.read_table(args.data, columns=list(OBJECTIVES))
    points = np.column_stack([table.column(c).to_numpy() for c in OBJECTIVES])
    del table
    return select_for_preferences(points, linear_grid(args.preferences), k=args.k, min_pool=args.min_pool,
                                  maximise=True), points


def in_memory_worker(args) -> dict:
    import pyarrow.parquet  # noqa: F401  (imported before the baseline, as in the chunked worker)

    import paretohqd.pareto  # noqa: F401

    baseline = rss_mb()
    began = time.perf_counter()
    selection, _ = in_memory_selection(args)
    return {"wall_s": time.perf_counter() - began, "peak_mb": peak_rss_mb(), "baseline_mb": baseline,
            "pool_size": int(selection.pool_indices.size), "num_layers": int(selection.num_layers)}


WORKERS = {"pipeline": pipeline_worker, "chunked": chunked_worker, "in-memory": in_memory_worker}


def run_worker(mode: str, n: int, data: Path, out: Path, args) -> dict:
    result_file = out / f"result-{mode}-{n}.json"
    log_file = out / f"log-{mode}-{n}.txt"
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", mode, "--data", str(data),
               "--run-dir", str(out / f"run-{n}"), "--result", str(result_file), "--shard-size", str(args.shard_size),
               "--batch-size", str(args.batch_size), "--read-batch", str(args.read_batch), "--k", str(args.k),
               "--min-pool", str(args.min_pool), "--preferences", str(args.preferences)]
    command += ["--no-plot"] if args.no_plot else []
    command += [] if args.no_verify else ["--verify"]
    began = time.perf_counter()
    with open(log_file, "w") as log:
        done = subprocess.run(command, cwd=out, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SystemExit(f"{mode} n={n} failed (exit {done.returncode}); see {log_file}:\n"
                         + "\n".join(log_file.read_text().splitlines()[-15:]))
    result = json.loads(result_file.read_text())
    result.update(n=n, mode=mode, process_s=time.perf_counter() - began)
    return result


# ----------------------------------------------------------------------------------------------------------- main


def sizes(text: str) -> list[int]:
    return [int(float(v)) for v in text.split(",") if v.strip()]


def format_rows(results: list[dict]) -> str:
    lines = [f"{'n':>12}  {'mode':<10} {'wall s':>9} {'peak MB':>9} {'base MB':>8}  notes"]
    for r in results:
        notes = []
        if "verified" in r:
            notes.append("equal to in-memory" if r["mode"] == "chunked" else "equal to chunked") if r["verified"] \
                else notes.append("MISMATCH")
        if "passes" in r:
            notes.append(f"{r['passes']} pass, <= {r['max_candidates']:,} candidates")
        if "num_layers" in r:
            notes.append(f"pool {r['pool_size']:,} in {r['num_layers']} layers")
        lines.append(f"{r['n']:>12,}  {r['mode']:<10} {r['wall_s']:>9.2f} {r['peak_mb']:>9.0f} "
                     f"{r['baseline_mb']:>8.0f}  {'; '.join(notes)}")
    return "\n".join(lines)


def format_units(results: list[dict]) -> str:
    lines = []
    for r in results:
        if r["mode"] != "pipeline":
            continue
        lines.append(f"pipeline n={r['n']:,}: per unit kind (count, total wall s, peak MB while one ran)")
        for u in r["units"]:
            lines.append(f"    {u['kind']:<16} {u['count']:>5} {u['wall_s']:>9.2f} {u['peak_mb']:>9.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=sizes, default=[100_000, 1_000_000],
                        help="pipeline sizes, comma-separated (default 100000,1000000)")
    parser.add_argument("--chunked-sizes", type=sizes, default=[100_000, 1_000_000, 10_000_000],
                        help="sizes of the chunked and in-memory selections (default 100000,1000000,10000000)")
    parser.add_argument("--modes", default="pipeline,chunked,in-memory", help="which modes to run")
    parser.add_argument("--out", default=None, help="folder for data files and run directories (default: a "
                        "temporary folder, removed at the end unless --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--format", choices=("parquet", "jsonl"), default="parquet", help="pipeline data file")
    parser.add_argument("--shard-size", type=int, default=50_000,
                        help="score.shard_size (the pipeline's default is 2048; each shard reads the whole samples "
                             "file, so small shards cost time quadratic in n)")
    parser.add_argument("--batch-size", type=int, default=4096,
                        help="objective batch_size (the pipeline's default of 16 suits reward models)")
    parser.add_argument("--read-batch", type=int, default=1_000_000, help="rows per Parquet batch in chunked mode")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--min-pool", type=int, default=2000)
    parser.add_argument("--preferences", type=int, default=11)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-plot", action="store_true", help="select.plot: false in the pipeline")
    parser.add_argument("--no-verify", action="store_true", help="skip the equality checks")
    # Internal: one measured size in a fresh process.
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--verify", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = WORKERS[args.worker](args)
        Path(args.result).write_text(json.dumps(result))
        return 0

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(WORKERS))
    if unknown:
        parser.error(f"unknown mode {unknown[0]!r} (modes: {', '.join(WORKERS)})")
    temporary = args.out is None
    out = Path(tempfile.mkdtemp(prefix="paretohqd-load-") if temporary else args.out).resolve()
    if out == REPO or REPO in out.parents:
        parser.error(f"--out {out} is inside the repository; give a folder outside it")
    out.mkdir(parents=True, exist_ok=True)
    print(f"data and runs in {out}; {os.cpu_count()} CPUs; shard_size={args.shard_size}, "
          f"objective batch_size={args.batch_size}, k={args.k}, min_pool={args.min_pool}, "
          f"{args.preferences} preferences, plot={'off' if args.no_plot else 'on'}", flush=True)

    results = []
    try:
        if "pipeline" in modes:
            for n in args.sizes:
                data = write_file(out / f"samples-{n}.{args.format}", n, args.seed, True, args.format)
                results.append(run_worker("pipeline", n, data, out, args))
                print(format_rows(results[-1:]).splitlines()[1], flush=True)
                shutil.rmtree(out / f"run-{n}", ignore_errors=True)  # disk: a run holds several copies of the data
        for n in args.chunked_sizes:
            if not {"chunked", "in-memory"} & set(modes):
                break
            data = write_file(out / f"scores-{n}.parquet", n, args.seed, False)
            for mode in ("chunked", "in-memory"):
                if mode in modes:
                    results.append(run_worker(mode, n, data, out, args))
                    print(format_rows(results[-1:]).splitlines()[1], flush=True)
    finally:
        if temporary and not args.keep:
            shutil.rmtree(out, ignore_errors=True)

    print()
    print(format_rows(results))
    units = format_units(results)
    if units:
        print()
        print(units)
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": {k: v for k, v in vars(args).items()
                                                            if k not in ("worker", "data", "run_dir", "result")},
                                               "results": results}, indent=2))
    return 0 if all(r.get("verified", True) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
